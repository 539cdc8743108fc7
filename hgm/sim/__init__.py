"""Simulator: hidden-skill worlds that run the real policy and scheduler code in virtual time.

`landscape` (TOML world descriptions, shipped in `landscapes/`), `world` (hidden truth),
`simulation` (a virtual-clock run with N workers driving `hgm.loop.scheduler.Scheduler`),
`report` (aggregation over seeds).
"""
