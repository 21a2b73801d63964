"""scripts/summarize.py's numbers: the verdict rule (one symmetric test), the occlusion summary and the ECE floor column."""

from __future__ import annotations

import pytest
from _trainer_utils import load_script

summarize = load_script("summarize")


def _rows(**groups):
    return [{"method": m, "top1": v} for m, vals in groups.items() for v in vals]


def _cell(text: str, key: str, column: int) -> str:
    line = next(line for line in text.splitlines() if f"| {key} |" in line)
    return line.split(" | ")[column].strip()


def test_the_verdict_rule_is_symmetric_on_made_up_seeds():
    clear = {"none": [70.0, 70.5, 69.5], "a": [74.0, 74.5, 73.5]}  # 4 points apart, spread 0.5: Welch p < 0.001
    c = summarize.compare(clear["none"], clear["a"])
    swapped = summarize.compare(clear["a"], clear["none"])
    assert c["mark"] == "+" and swapped["mark"] == "-" and c["p"] < 0.05
    assert swapped["diff"] == pytest.approx(-c["diff"]) and swapped["p"] == pytest.approx(c["p"])
    assert (swapped["lo"], swapped["hi"]) == pytest.approx((-c["hi"], -c["lo"]))
    assert c["lo"] < 4.0 < c["hi"]
    # lower is better: the same difference is now a loss
    assert summarize.compare(clear["none"], clear["a"], higher=False)["mark"] == "-"
    # within noise: 1.5 points apart with seed spreads of ~1 (the old rule's "-" for any worse mean): no mark either way
    noisy = {"none": [71.0, 70.0, 72.0], "b": [69.5, 70.6, 68.4]}
    for a, b in ((noisy["none"], noisy["b"]), (noisy["b"], noisy["none"])):
        r = summarize.compare(a, b)
        assert r["mark"] == "" and r["p"] > 0.05 and r["lo"] < 0 < r["hi"]


def test_verdict_table_marks_both_directions_alike_and_never_tests_single_runs():
    text = summarize.verdicts(_rows(none=[70.0, 70.5, 69.5], a=[74.0, 74.5, 73.5], b=[66.0, 66.5, 65.5],
                                    c=[69.5, 70.6, 68.4], d=[80.0]))  # fmt: skip
    assert _cell(text, "top1", 3).endswith("**+**") and "[" in _cell(text, "top1", 3)
    assert _cell(text, "top1", 4).endswith("**-**")
    assert "**" not in _cell(text, "top1", 5)  # within noise
    assert _cell(text, "top1", 6) == "+10.00 (n=3 vs 1: no spread)"  # one run: shown, not tested
    verdict = _cell(text, "top1", 7)
    assert "better: a" in verdict and "worse: b" in verdict and "not separable: c" in verdict and "untested: d" in verdict
    assert "Welch" in text and "α = 0.05" in text
    # the baseline with one run: nothing can be tested
    assert _cell(summarize.verdicts(_rows(none=[70.0], a=[90.0, 91.0])), "top1", 3) == "+20.50 (n=1 vs 2: no spread)"
    assert summarize.verdicts(_rows(a=[1.0, 2.0])) == ""
    assert summarize.verdicts(_rows(none=[1.0, 2.0])) == "Only `none` ran: nothing to compare.\n"


def test_after_scaling_ece_is_shown_with_its_floor():
    rows = [{"method": m, "ts_ece_after": e, "ts_ece_floor": f} for m, e, f in
            [("none", 2.5, 2.9), ("none", 2.0, 2.8), ("mixup", 3.0, 3.1), ("mixup", 2.4, 3.0)]]  # fmt: skip
    text = summarize.verdicts(rows)
    assert "floor 2.85" in _cell(text, "ts_ece_after", 2) and "floor 3.05" in _cell(text, "ts_ece_after", 3)
    assert "perfectly calibrated" in text
    header = [h for _, h, _ in summarize.columns([{"ts_ece_after": 1.0, "ts_ece_floor": 2.0}])]
    assert header.index("ECE floor at this n (%)") == header.index("ECE after TS (%)") + 1


def test_occlusion_columns_average_the_informative_sizes_only():
    occ = {"hole": {"0": 90.0, "32": 60.0, "64": 40.0, "224": 10.0}, "border": {"0": 10.0, "32": 20.0, "224": 90.0}}
    row = summarize.occlusion_values(occ)
    assert row["occ_hole"] == pytest.approx(50.0) and row["occ_border"] == pytest.approx(20.0)
    # the evaluator's own list of informative sizes wins (here it dropped 32 as too small for the image)
    assert summarize.occlusion_values(occ | {"informative_sizes": [64]})["occ_hole"] == pytest.approx(40.0)
    table = summarize.curves_markdown([{"method": "none", "curves": {"hole": occ["hole"]}}])
    assert "| none | 90.0 | 60.0 | 40.0 | 10.0 |" in table and "| method | 0 | 32 | 64 | 224 |" in table


def test_the_cost_verdict_uses_cpu_time_not_wall_time(tmp_path):
    """Runs paused or run beside other jobs have long wall times and the same CPU time: the cost claim is judged on
    CPU time, and wall time is judged only where no run recorded CPU time (runs made before it was recorded)."""
    import json

    def runs(root, cpu: bool):
        rows = []
        timings = [("none", 600, 300), ("none", 610, 320), ("none", 605, 310),
                   ("mixup", 900, 305), ("mixup", 910, 315), ("mixup", 905, 310)]  # fmt: skip
        for i, (method, wall, cpu_s) in enumerate(timings):
            run = root / f"r{i}"
            run.mkdir(parents=True)
            (run / "config.yaml").write_text(f"mix:\n  name: {method}\ntrainer:\n  seed: {i}\n")
            summary = {"top1": 70.0 + i, "wall_time_s": wall} | ({"cpu_time_s": cpu_s} if cpu else {})
            (run / "summary.json").write_text(json.dumps(summary))
            rows.append(summarize.load_run(run))
        return rows

    rows = runs(tmp_path / "new", cpu=True)
    assert [r["cpu_min"] for r in rows[:2]] == pytest.approx([5.0, 320 / 60])
    text = summarize.verdicts(rows)
    assert "| wall_min |" not in text  # wall time would mark mixup significantly worse (+5 min, spread 0.08)
    assert "**" not in _cell(text, "cpu_min", 3) and "not separable: mixup" in _cell(text, "cpu_min", 4)
    old = summarize.verdicts(runs(tmp_path / "old", cpu=False))
    assert "| cpu_min |" not in old and _cell(old, "wall_min", 3).endswith("**-**")
