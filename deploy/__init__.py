"""Bootstrap scripts that prepare a device (installed as `edge_bench_deploy` so that
`edge-bench deploy --bootstrap` finds them in a wheel install too)."""
