"""`make bench` writes what it measured into the README and docs/scale.md, and nothing else.

The benchmark itself takes a quarter of an hour and its figures depend on the machine:
it is run by hand (`make bench`), never by the tests. These check where its figures go.
"""
import re

import pytest

from coursekit.examples import bench

FIGURES = "The completed notebook runs in **1.40x** the time ..."


def test_publish_fills_the_block_and_keeps_the_rest(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# Intro\n\n%s\nold figures\n%s\n\nThe end.\n" % (bench.BEGIN, bench.END))
    bench.publish(page, FIGURES)
    bench.publish(page, FIGURES)  # again, as the next run does
    assert page.read_text() == "# Intro\n\n%s\n%s\n%s\n\nThe end.\n" % (
        bench.BEGIN, FIGURES, bench.END)


def test_publish_refuses_a_page_without_the_block(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# Intro\n")
    with pytest.raises(SystemExit, match="no <!-- written by make bench"):
        bench.publish(page, FIGURES)
    assert page.read_text() == "# Intro\n"


@pytest.mark.parametrize("page", [bench.README, bench.SCALE_DOC])
def test_the_committed_figures_are_make_benchs(page):
    text = page.read_text()
    assert text.count(bench.BEGIN) == 1 and text.count(bench.END) == 1
    block = text[text.index(bench.BEGIN) + len(bench.BEGIN):text.index(bench.END)]
    assert re.search(r"`make bench`, \d{4}-\d\d-\d\d, \d+ cores, %d sample submissions"
                     % bench.SUBMISSIONS, block), "run: make bench"
    if page == bench.SCALE_DOC:
        assert "the completed notebook (the reference) alone: " in block
        assert "the same with one other busy process: " in block


def test_the_capacity_plan_has_a_block_of_its_own(tmp_path):
    page = tmp_path / "page.md"
    table, plan = bench.markers(), bench.markers(bench.PLAN)
    page.write_text("%s\ntable\n%s\n\n%s\nold plan\n%s\n" % (table + plan))
    bench.publish(page, "new plan", bench.PLAN)
    assert page.read_text() == "%s\ntable\n%s\n\n%s\nnew plan\n%s\n" % (table + plan)
    assert (bench.block_text(page), bench.block_text(page, bench.PLAN)) == ("table",
                                                                            "new plan")
