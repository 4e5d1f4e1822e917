"""benchmarks/run_all.py gathers the result files into their own file and never rewrites BENCHMARKS.md."""

import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))

import run_all  # noqa: E402


def test_gather_orders_demotes_and_skips_its_own_output(tmp_path):
    (tmp_path / "zeta.md").write_text("# Zeta\n\nz figures\n")
    (tmp_path / "distill.md").write_text("# Distill\n\n## Detail\n\nd figures\n")
    (tmp_path / "prepare.md").write_text("# Prepare\n\np figures\n")
    out = run_all.gather(tmp_path)
    assert out == tmp_path / "ALL.md"
    text = out.read_text()
    # ORDER first (prepare before distill), then the rest by name; one level down under the title
    assert text.index("## Prepare") < text.index("## Distill") < text.index("### Detail") < text.index("## Zeta")
    assert run_all.gather(tmp_path).read_text() == text  # a second run does not gather ALL.md itself
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ALL.md", "distill.md", "prepare.md", "zeta.md"]


def test_gather_leaves_benchmarks_md_alone(tmp_path):
    before = (BENCH.parent / "BENCHMARKS.md").read_bytes()
    (tmp_path / "x.md").write_text("# X\n")
    run_all.gather(tmp_path)
    assert (BENCH.parent / "BENCHMARKS.md").read_bytes() == before
