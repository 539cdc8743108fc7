"""The chat-completions client: transports, headers, and how it reads errors (one request per call)."""

import os
import socket
import tempfile
import unittest

from agent.llm import LLMClient, LLMError
from agent.tests.fake_server import FakeLLM

MESSAGES = [{"role": "user", "content": "hi"}]


def client(url: str, **kwargs) -> LLMClient:
    return LLMClient(url, "alias-1", timeout=5, **kwargs)


class TransportTest(unittest.TestCase):
    def check_round_trip(self, fake: FakeLLM) -> None:
        reply = client(fake.url, tags='{"node":"3","task":"t"}').chat(MESSAGES)
        self.assertEqual(reply.content, "hello")
        self.assertEqual(reply.usage["total_tokens"], 120)
        request = fake.requests[0]
        self.assertEqual(request["path"], "/v1/chat/completions")
        self.assertEqual(request["body"], {"model": "alias-1", "messages": MESSAGES})
        self.assertEqual(request["headers"]["X-HGM-Tags"], '{"node":"3","task":"t"}')
        self.assertNotIn("Authorization", request["headers"])

    def test_unix_socket(self):
        with FakeLLM.unix(["hello"]) as fake:
            self.check_round_trip(fake)

    def test_loopback_tcp(self):
        with FakeLLM.tcp(["hello"]) as fake:
            self.check_round_trip(fake)

    def test_url_forms(self):
        def where(url):
            llm = client(url)
            return llm.host, llm.port, llm.path

        self.assertEqual(where("http://127.0.0.1:8080"), ("127.0.0.1", 8080, "/v1/chat/completions"))
        self.assertEqual(where("http://127.0.0.1:8080/v1/"), ("127.0.0.1", 8080, "/v1/chat/completions"))
        self.assertEqual(where("/run/hgm/llm.sock"), ("/run/hgm/llm.sock", None, "/v1/chat/completions"))

    def test_from_env_reads_only_hgm_variables(self):
        llm = LLMClient.from_env({"HGM_LLM_URL": "/x.sock", "HGM_LLM_MODEL": "m", "OPENAI_API_KEY": "sk"})
        self.assertEqual((llm.host, llm.model, llm.tags), ("/x.sock", "m", None))
        with self.assertRaisesRegex(ValueError, "HGM_LLM_URL"):
            LLMClient.from_env({"OPENAI_API_KEY": "sk"})
        with self.assertRaisesRegex(ValueError, "HGM_LLM_TAGS"):
            LLMClient.from_env({"HGM_LLM_URL": "/x.sock", "HGM_LLM_TAGS": "[1, 2"})
        tagged = LLMClient.from_env({"HGM_LLM_URL": "/x.sock", "HGM_LLM_TAGS": '{"purpose": "solve"}'})
        self.assertEqual(tagged.tags, '{"purpose":"solve"}')


class ErrorTest(unittest.TestCase):
    def assertFails(self, script, kind, requests=1):
        with FakeLLM.tcp(script) as fake:
            with self.assertRaises(LLMError) as caught:
                client(fake.url).chat(MESSAGES)
            self.assertEqual(caught.exception.kind, kind)
            self.assertEqual(len(fake.requests), requests)
        return caught.exception

    def test_budget_refusal_is_a_stop_and_not_retried(self):
        error = {"message": "run budget exhausted", "type": "budget_exceeded", "code": "budget_exceeded"}
        err = self.assertFails([{"status": 429, "error": error}], "budget", 1)
        self.assertIn("budget exhausted", str(err))
        self.assertFails([{"status": 402, "error": {"message": "pay"}}], "budget", 1)

    def test_forbidden_is_a_refusal(self):
        self.assertFails([{"status": 403, "error": {"message": "no"}}], "refused", 1)

    def test_server_errors_are_not_retried_here(self):
        self.assertFails([{"status": 500}] * 5, "failed", 1)  # the gateway retries; the loop counts failures
        with FakeLLM.tcp([{"status": 503}, "fine"]) as fake:
            llm = client(fake.url)
            self.assertRaisesRegex(LLMError, "503", llm.chat, MESSAGES)
            self.assertEqual(llm.chat(MESSAGES).content, "fine")

    def test_bad_request_is_not_retried(self):
        self.assertFails([{"status": 400, "error": {"message": "bad"}}] * 3, "failed", 1)

    def test_malformed_responses(self):
        for raw in ("not json", '{"choices": []}', '{"choices": [{"message": "x"}]}', b"\xff\xfe"):
            self.assertFails([{"raw": raw}], "failed", 1)

    def test_odd_but_usable_responses(self):
        odd = ('{"choices": [{"message": {"content": "a\\ud800b"}}], "usage": {"prompt_tokens": "many"}}',
               '{"choices": [{"message": {"content": [{"type": "text", "text": "hi"}]}}], "usage": [1]}',
               '{"choices": [{"message": {"content": null}}]}')
        with FakeLLM.tcp([{"raw": raw} for raw in odd]) as fake:
            llm = client(fake.url)
            first = llm.chat(MESSAGES)
            self.assertEqual((first.content, first.usage["prompt_tokens"]), ("a?b", 0))
            self.assertEqual(llm.chat(MESSAGES).content, "hi")
            self.assertEqual(llm.chat(MESSAGES).content, "")

    def test_non_json_error_body(self):
        with FakeLLM.tcp([{"raw": "ok"}]) as fake:
            fake.script = [{"status": 502, "error": "gateway down"}]
            with self.assertRaisesRegex(LLMError, "502"):
                client(fake.url).chat(MESSAGES)

    def test_connection_refused(self):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        with self.assertRaisesRegex(LLMError, "cannot reach"):
            client(f"http://127.0.0.1:{port}").chat(MESSAGES)
        with tempfile.TemporaryDirectory() as tmp:
            with self.assertRaisesRegex(LLMError, "cannot reach"):
                client(os.path.join(tmp, "missing.sock")).chat(MESSAGES)


if __name__ == "__main__":
    unittest.main()
