"""Shared pieces of the benchmark reports (bench/takeover_bench_report.py and
bench/manager_bench_report.py): number formats, the PASS/FAIL verdict and the target row of the
upgrade hand-over, which both benchmarks state the same way. The summary tables are not rendered
here: the drivers render them (bench/support/table.h) and the reports paste their "table_md"."""


def f2(x):
    return f"{x:.2f}"


def md_table(header, rows, align):
    """The one renderer of the reports' own tables: a markdown table of `header` and `rows` (lists of
    cells), `align` one "---" / "---:" per column."""
    out = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def verdict(ok):
    return "**PASS**" if ok else "**FAIL**"


def handover_target_row(label, upgrade, idle, target, whole_text):
    """The cells of the target row "upgrade hand-over blackout p99 < target" for one configuration:
    the hand-over's p99 and median, `whole_text` (the caller's figure over the whole upgrade), and
    the idle control of the same length when the run measured one."""
    name = f"upgrade hand-over blackout p99 < {target:g} ms"
    s = upgrade.get("handover_ms", {"n": 0})
    if s.get("n", 0) == 0:
        return [name, label, "not measured", verdict(False)]
    control = idle.get("handover_length_max_gap_ms")
    control_text = (f"; idle control of the same length: p99 {f2(control['p99'])}, median "
                    f"{f2(control['median'])}" if control else "")
    return [name, label, f"{f2(s['p99'])} ms (median {f2(s['median'])}; {whole_text}{control_text})",
            verdict(s["p99"] < target)]


TARGET_HEADER = (["target", "configuration", "measured", "result"], ["---", "---", "---:", "---"])
