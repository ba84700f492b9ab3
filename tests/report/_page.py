"""Read report.html back with the stdlib parser: the tables' cells and every src/href."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path


class PageParser(HTMLParser):
    """Collects tables by id/class (rows of cells: attributes and text) and every src/href."""

    def __init__(self):
        super().__init__()
        self.tables: dict[str, list[list[dict]]] = {}
        self.links: list[str] = []
        self.sources: list[str] = []
        self.images: list[dict] = []
        self._table = None
        self._cell = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self._table = attrs.get("id") or attrs.get("class")
            self.tables[self._table] = []
        elif tag == "tr" and self._table is not None:
            self.tables[self._table].append([])
        elif tag in ("td", "th") and self._table is not None:
            self._cell = {"tag": tag, **attrs, "text": "", "img": []}
            self.tables[self._table][-1].append(self._cell)
        if tag == "img":
            self.sources.append(attrs.get("src", ""))
            self.images.append(attrs)
            if self._cell is not None:
                self._cell["img"].append(attrs)
        if tag == "a" and "href" in attrs:
            self.links.append(attrs["href"])

    def handle_endtag(self, tag):
        if tag == "table":
            self._table = None
        if tag in ("td", "th"):
            self._cell = None

    def handle_data(self, data):
        if self._cell is not None:
            self._cell["text"] += data


def parse(path: Path) -> PageParser:
    parser = PageParser()
    parser.feed(Path(path).read_text())
    return parser
