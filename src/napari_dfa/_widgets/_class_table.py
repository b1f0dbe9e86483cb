"""An editable table of classes: name, colour, annotated pixels and the prior they imply."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from qtpy.QtCore import Qt
from qtpy.QtGui import QColor
from qtpy.QtWidgets import QAbstractItemView, QHeaderView, QTableWidget, QTableWidgetItem

__all__ = ["ClassTable", "is_color"]

_HEX = re.compile(r"^#[0-9a-fA-F]{6}$")
NAME, COLOR, PIXELS, PRIOR, NEGLOG = range(5)


def is_color(text: str) -> bool:
    return bool(_HEX.match(text.strip()))


class ClassTable(QTableWidget):
    """Rows = classes ``1..K``. Names and colours are editable (user edits survive a
    recount); pixel counts and the frequency prior ``pi`` / ``-log pi`` are read-only."""

    def __init__(self, parent=None) -> None:
        super().__init__(0, 5, parent)
        self.setHorizontalHeaderLabels(["class", "colour", "annotated px", "prior \u03c0", "\u2212log \u03c0"])
        self.verticalHeader().setVisible(True)
        header = self.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(NAME, QHeaderView.ResizeMode.Stretch)
        self.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self._edits: dict[tuple[int, int], str] = {}
        self._updating = False
        self.itemChanged.connect(self._on_edit)

    def _on_edit(self, item: QTableWidgetItem) -> None:
        if self._updating or item.column() not in (NAME, COLOR):
            return
        self._edits[item.row(), item.column()] = item.text().strip()
        if item.column() == COLOR:
            self._paint(item)

    def _paint(self, item: QTableWidgetItem) -> None:
        text = item.text().strip()
        if is_color(text):
            color = QColor(text)
            item.setBackground(color)
            item.setForeground(QColor("black" if color.lightness() > 140 else "white"))
        else:
            item.setBackground(QColor("#ff5252"))  # invalid: flagged, refused at Start

    def clear_edits(self) -> None:
        self._edits.clear()

    def set_classes(
        self, names: Sequence[str], colors: Sequence[str], counts: Sequence[int], prior: Sequence[float]
    ) -> None:
        rows = [
            {
                NAME: self._edits.get((row, NAME), str(name)),
                COLOR: self._edits.get((row, COLOR), str(color)),
                PIXELS: f"{int(n):,}",
                PRIOR: f"{p:.3f}",
                NEGLOG: f"{-math.log(p):.2f}" if p > 0 else "inf",
            }
            for row, (name, color, n, p) in enumerate(zip(names, colors, counts, prior, strict=False))
        ]
        if self._shows(rows):  # nothing changed (e.g. a recount after training): no re-layout
            return
        self._updating = True
        try:
            self.setRowCount(len(rows))
            self.setVerticalHeaderLabels([str(i) for i in range(1, len(rows) + 1)])
            for row, cells in enumerate(rows):
                for col, text in cells.items():
                    item = QTableWidgetItem(text)
                    if col in (PIXELS, PRIOR, NEGLOG):
                        item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEditable)
                        item.setTextAlignment(int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter))
                    self.setItem(row, col, item)
                    if col == COLOR:
                        self._paint(item)
        finally:
            self._updating = False
        from napari_dfa._widgets._common import fit_table_height

        fit_table_height(self)

    def _shows(self, rows: list[dict[int, str]]) -> bool:
        """Whether the table already shows exactly these cells."""
        if self.rowCount() != len(rows):
            return False
        for r, cells in enumerate(rows):
            for col, text in cells.items():
                item = self.item(r, col)
                if item is None or item.text() != text:
                    return False
        return True

    def _column(self, col: int) -> list[str]:
        return [self.item(r, col).text().strip() if self.item(r, col) else "" for r in range(self.rowCount())]

    def names(self) -> list[str]:
        return self._column(NAME)

    def colors(self) -> list[str]:
        return self._column(COLOR)

    def validated(self) -> tuple[list[str], list[str]]:
        """``(names, colours)``; :class:`~napari_dfa.errors.InputError` names a bad cell."""
        from napari_dfa.errors import InputError

        names, colors = self.names(), self.colors()
        for i, (n, c) in enumerate(zip(names, colors, strict=True), start=1):
            if not n:
                raise InputError(f"class {i} has no name; type a name in the class table")
            if not is_color(c):
                raise InputError(f"class {i} ({n}) colour '{c}' is not a #rrggbb colour; fix it in the class table")
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise InputError(f"class names must be unique, {dupes} appear twice; rename one in the class table")
        return names, colors

    def edit(self, row: int, col: int, text: str) -> None:
        """Set a cell as if the user typed it (for scripts and tests)."""
        self.item(row, col).setText(text)
