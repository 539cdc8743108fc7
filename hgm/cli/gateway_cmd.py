"""`hgm gateway serve` (run a gateway by hand, for debugging) and `hgm gateway try` (one call)."""

from __future__ import annotations

import typer

from hgm.cli.common import fail, print_json

MODEL_HELP = "provider/model (litellm), local/smollm2, local/PATH.gguf, scripted:FILE or replay:DIR"


def register(app: typer.Typer) -> None:
    """Add the `gateway` sub-app to `app`."""
    sub = typer.Typer(help="The LLM gateway: serve a model to agents, or try one call.", no_args_is_help=True)

    @sub.command("serve")
    def serve(
        model: str = typer.Option(..., "--model", "-m", help=MODEL_HELP),
        socket_path: str = typer.Option(None, "--socket", help="Unix socket path (default: a fresh one under /tmp)."),
        port: int = typer.Option(None, "--port", help="Also listen on 127.0.0.1:PORT (0 = any free port)."),
        api_base: str = typer.Option(None, "--api-base", help="Base URL for hosted_vllm/ollama/... models."),
        calls: str = typer.Option(None, "--calls", help="Append a JSON line per call to this file."),
        max_tokens_total: int = typer.Option(None, "--budget-tokens", help="Refuse calls once this many tokens are spent."),
        max_cost: float = typer.Option(None, "--budget-usd", help="Refuse calls once this many dollars are spent."),
        grammar: bool = typer.Option(None, "--grammar/--no-grammar", help="Force the action format (default: on for local models)."),
        reply_tokens: int = typer.Option(None, "--reply-tokens", help="Default max_tokens of a reply."),
    ) -> None:
        """Serve until Ctrl-C; print the HGM_LLM_URL to give agents."""
        import signal
        import threading

        from hgm.gateway import BudgetLimit, GatewayConfig, JsonlRecorder, start_gateway

        _check_positive(max_tokens_total=max_tokens_total, max_cost=max_cost, reply_tokens=reply_tokens)
        if port is not None and not 0 <= port <= 65535:
            fail(f"--port {port} is not a port number (0-65535)")
        config = GatewayConfig(
            model=model,
            socket_path=socket_path,
            tcp_port=port,
            api_base=api_base,
            run_budget=BudgetLimit(tokens=max_tokens_total, cost=max_cost),
            grammar=grammar,
            default_max_tokens=reply_tokens,
        )
        recorder = JsonlRecorder(calls) if calls else _echo_record
        try:
            gateway = start_gateway(config, recorder)
        except (ValueError, OSError) as exc:
            fail(f"cannot start the gateway: {exc}")
        with gateway:
            typer.echo(f"HGM_LLM_URL={gateway.socket_path}", err=True)
            if gateway.tcp_url:
                typer.echo(f"HGM_LLM_URL={gateway.tcp_url}", err=True)
            typer.echo(f"HGM_LLM_MODEL={config.alias}   (Ctrl-C stops)", err=True)
            stop = threading.Event()
            signal.signal(signal.SIGTERM, lambda *_: stop.set())  # `kill` also removes the socket
            try:
                while not stop.wait(0.5):
                    pass
            except KeyboardInterrupt:
                pass
        typer.echo("stopped", err=True)

    @sub.command("try")
    def try_model(
        prompt: str = typer.Argument(..., help="The user message to send."),
        model: str = typer.Option(..., "--model", "-m", help=MODEL_HELP),
        api_base: str = typer.Option(None, "--api-base", help="Base URL for hosted_vllm/ollama/... models."),
        grammar: bool = typer.Option(None, "--grammar/--no-grammar", help="Force the action format (default: on for local models)."),
        reply_tokens: int = typer.Option(128, "--reply-tokens", help="max_tokens of the reply."),
        json_out: bool = typer.Option(False, "--json", help="Print the reply and the call record as JSON."),
    ) -> None:
        """Start a gateway, send one chat call through it, print the reply and what it cost."""
        from dataclasses import asdict

        from hgm.gateway import GatewayConfig, start_gateway
        from hgm.gateway.client import chat, reply_text

        _check_positive(reply_tokens=reply_tokens)
        records: list = []
        config = GatewayConfig(model=model, api_base=api_base, grammar=grammar, retry_attempts=2)
        try:
            gateway = start_gateway(config, records.append)
        except (ValueError, OSError) as exc:
            fail(f"cannot start the gateway: {exc}")
        with gateway:
            status, body = chat(gateway.url, [{"role": "user", "content": prompt}], max_tokens=reply_tokens,
                                tags={"purpose": "try"})
        record = asdict(records[-1]) if records else {}
        if json_out:
            print_json({"status": status, "reply": body, "record": record})
        elif status != 200:
            fail(f"the model call failed (HTTP {status}): {body.get('error', {}).get('message', body)}", code=1)
        else:
            typer.echo(reply_text(body))
            typer.echo(
                f"[{record.get('prompt_tokens')} prompt + {record.get('completion_tokens')} completion tokens, "
                f"${record.get('cost', 0):.6f}, {record.get('latency_s', 0):.2f} s]",
                err=True,
            )
        if status != 200:
            raise typer.Exit(1)

    app.add_typer(sub, name="gateway")


def _check_positive(**values: float | None) -> None:
    for name, value in values.items():
        if value is not None and value <= 0:
            fail(f"--{name.replace('_', '-')} must be positive (got {value})")


def _echo_record(record: object) -> None:
    status = getattr(record, "status", "?")
    tokens = getattr(record, "prompt_tokens", 0) + getattr(record, "completion_tokens", 0)
    typer.echo(
        f"call {status} tags={getattr(record, 'tags', {})} tokens={tokens} "
        f"{getattr(record, 'latency_s', 0):.3f}s {getattr(record, 'error', '') or ''}",
        err=True,
    )
