"""Run control: one session of an evolution run on real sandboxes.

`session` (set up a run's session: suite, backend, gateway, search state; tear down),
`scheduler` (budgets, work in flight, thread-safe dispatch of the policy's actions),
`executor` (worker threads that carry out jobs and record each result in one archive
transaction), `job_handler` (a job → the evaluation path or one expansion, here) and
`checkouts` (agent versions' source trees). The Ray executor swaps only the job handler:
`ray_executor` (head: jobs as Ray tasks, node services), `ray_node` (what runs on a
worker node), `ray_transfer` (what travels as bytes), `ray_cluster` (connect, describe);
Ray is imported only when `executor = "ray"`.
"""
