"""The self-contained HTML page of a markdown report: images embedded, tables kept and sortable, `<details>`
kept, alerts styled, nothing loaded from elsewhere; checked by parsing the page (no browser)."""

from pathlib import Path

import pytest
from conftest import REPO, effbench
from page_check import check_page, decoded, parse_page

from bench_lib.report.html import page_path, render_page, write_page

PNG = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
       b"\x00\x00\x00\rIDATx\x9cc\xf8\xff\xff?\x00\x05\xfe\x02\xfe\xa7\x35\x81\x84\x00\x00\x00\x00IEND\xaeB`\x82")

MARKDOWN = """# A report

> [!CAUTION]
> One run of one process on a side.

| technique | speedup |
| --- | --- |
| int8 | 2.10x [1.9, 2.3] |
| fp32 | 1.00x |

![latency](plots/latency.png)

<details><summary>Every case (2)</summary>

| case | median (ms) |
| --- | --- |
| a | 1.2 |
| b | 10 |

</details>
"""


def test_a_page_embeds_its_images_and_keeps_tables_details_and_alerts(tmp_path):
    (tmp_path / "plots").mkdir()
    (tmp_path / "plots" / "latency.png").write_bytes(PNG)
    readme = tmp_path / "README.md"
    readme.write_text(MARKDOWN)
    page = write_page(readme)
    assert page == tmp_path / "index.html"
    text = page.read_text()
    parts = check_page(text, MARKDOWN)
    assert parts.tables == 2 and parts.details == 1 and decoded(parts.images[0]) == PNG
    assert '<blockquote class="alert alert-caution">' in text and "[!CAUTION]" not in text
    assert "<td>2.10x [1.9, 2.3]</td>" in text and "<title>A report</title>" in text
    assert parts.scripts == 1 and "aria-sort" in text  # the tables sort without anything from elsewhere


def test_an_image_that_is_no_local_file_is_a_link_never_a_load(tmp_path):
    markdown = "![remote](https://example.com/a.png) and ![gone](missing.png)\n"
    parts = parse_page(render_page(markdown, tmp_path))
    assert parts.images == [] and parts.loads == []
    assert "[image not embedded: gone]" in render_page(markdown, tmp_path)


def test_raw_html_other_than_details_is_text(tmp_path):
    markdown = ("| error |\n| --- |\n| in <module>: <img src=x onerror=alert(1)> |\n\n<script>alert(1)</script>\n\n"
                "<details><summary>more</summary>\n\nhidden\n\n</details>\n")
    text = render_page(markdown, tmp_path)
    parts = parse_page(text)
    assert parts.images == [] and parts.scripts == 1 and parts.details == 1  # the one script is the sorter
    assert "in &lt;module&gt;: &lt;img src=x onerror=alert(1)&gt;" in text and "&lt;script&gt;alert(1)" in text


def test_a_link_to_a_report_goes_to_its_page_where_there_is_one(tmp_path):
    for name in ("a", "b", "here"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "README.md").write_text("# a report\n")
    (tmp_path / "a" / "index.html").write_text("<html></html>")
    text = render_page("[A](../a/README.md) and [B](../b/README.md)\n", tmp_path / "here")
    assert '<a href="../a/index.html">A</a>' in text and '<a href="../b/README.md">B</a>' in text


@pytest.mark.parametrize(("name", "page"), [("README.md", "index.html"), ("compare.md", "compare.html"),
                                            ("summary", "summary.html"), ("x.html", "x.html.html")])
def test_the_page_goes_beside_its_markdown_and_never_over_it(name, page):
    assert page_path(Path("out") / name) == Path("out") / page


@pytest.mark.slow
def test_effbench_report_writes_the_page_beside_the_readme(tmp_path):
    out = tmp_path / "report"
    proc = effbench("report", str(REPO / "results" / "20261201T113828Z-inference-quick-cpu"), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    markdown = (out / "README.md").read_text()
    parts = check_page((out / "index.html").read_text(), markdown)
    assert len(parts.images) == len(list(out.glob("*.png"))) >= 1 and parts.tables >= 1
