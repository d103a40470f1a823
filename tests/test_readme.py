"""The README stays true to the tests and the command line."""

from tests.troubleshooting import README, collect, readme_section, table


def test_troubleshooting_table_is_the_one_the_tests_make():
    rows = collect()
    assert len(rows) >= 25 and len({r[0] for r in rows}) == len(rows)   # one row per situation
    assert readme_section(README.read_text(encoding="utf-8")) == table(rows), \
        "README.md is out of date: run python -m tests.troubleshooting --write"


def test_every_row_names_a_test_that_exists():
    import ast
    from pathlib import Path

    here = Path(__file__).resolve().parent
    for _, _, where in collect():
        module, name = where.split("::")
        tree = ast.parse((here / f"{module}.py").read_text(encoding="utf-8"))
        assert name in {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}, where
