"""A form generated from a config dataclass (``TrainConfig``, ``SamplingConfig``).

Widgets, ranges, steps, decimals, tooltips and groups all come from the
:class:`core.hparams.Param` metadata, so a new hyperparameter shows up here
without touching the GUI. Validation is :func:`core.hparams.check_value`: the
form never has rules of its own.

Number boxes accept any number the user types (not only the valid range) so a
mistake stays visible as a red field with a message instead of being silently
clamped; the arrow keys and wheel stay inside the valid range. The caller reads
:meth:`ParamForm.errors` on :attr:`ParamForm.changed` and disables its action
with the reason.

Usage::

    form = ParamForm(SamplingConfig)          # or ParamForm(TrainConfig(), skip=("data_path",))
    form.changed.connect(lambda: start.setEnabled(not form.errors()))
    cfg = form.values()                       # a SamplingConfig instance
    form.set_values(cfg.replace(top_k=40))
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtGui import QValidator
from PySide6.QtWidgets import (
    QAbstractSpinBox,
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QSpinBox,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from core.hparams import ParamSpec, check_value, param_specs

INVALID_STYLE = "border: 1px solid #d0342c; border-radius: 2px;"
ERROR_COLOR = "#d0342c"

_INT_LIMIT = 2**31 - 1  # QSpinBox holds a C int
_FLOAT_LIMIT = 1e15


class _RangeArrows:
    """Keep arrow keys and the wheel inside the Param range while typing may leave it."""

    _low: float | None = None
    _high: float | None = None

    def _clamp_to_param(self, value: float) -> float:
        if self._low is not None and value < self._low:
            return self._low
        if self._high is not None and value > self._high:
            return self._high
        return value

    def stepBy(self, steps: int) -> None:  # noqa: N802 (Qt override)
        before = self.value()
        super().stepBy(steps)
        inside_before = self._clamp_to_param(before) == before
        if inside_before:
            self.setValue(self._clamp_to_param(self.value()))

    def stepEnabled(self):  # noqa: N802 (Qt override)
        flags = QAbstractSpinBox.StepEnabledFlag.StepNone
        v = self.value()
        if self._high is None or v < self._high:
            flags |= QAbstractSpinBox.StepEnabledFlag.StepUpEnabled
        if self._low is None or v > self._low:
            flags |= QAbstractSpinBox.StepEnabledFlag.StepDownEnabled
        return flags


class IntBox(_RangeArrows, QSpinBox):
    """Whole numbers; any typed value is kept so that the form can say what is wrong."""

    def __init__(self, spec: ParamSpec, parent: QWidget | None = None):
        super().__init__(parent)
        p = spec.param
        self._low = None if p.low is None else int(p.low)
        self._high = None if p.high is None else int(min(p.high, _INT_LIMIT))
        self.setRange(-_INT_LIMIT, _INT_LIMIT)
        self.setSingleStep(int(p.step) if p.step and p.step >= 1 else 1)
        self.setGroupSeparatorShown(False)


class FloatBox(_RangeArrows, QDoubleSpinBox):
    """Real numbers shown compactly (``0.003``, ``1e-07``); typing ``3e-4`` works.

    Shows at least 6 significant digits (more if the Param's decimals ask for
    it); internally many more are kept so that tiny learning rates survive.
    """

    def __init__(self, spec: ParamSpec, parent: QWidget | None = None):
        super().__init__(parent)
        p = spec.param
        self._low = p.low
        self._high = p.high
        self._digits = max(6, int(p.decimals))  # significant digits: enough for 1.618 and 1e-07
        self.setDecimals(15)
        self.setRange(-_FLOAT_LIMIT, _FLOAT_LIMIT)
        if p.step:
            self.setSingleStep(p.step)
        # Wide positive ranges (learning rates) step by orders of magnitude, not by a fixed amount.
        if p.low and p.low > 0 and p.high and p.high / p.low >= 1e3:
            self.setStepType(QAbstractSpinBox.StepType.AdaptiveDecimalStepType)

    def textFromValue(self, value: float) -> str:  # noqa: N802 (Qt override)
        text = f"{value:.{self._digits}g}"
        return text

    def valueFromText(self, text: str) -> float:  # noqa: N802 (Qt override)
        try:
            return float(text.strip())
        except ValueError:
            return self.value()

    def validate(self, text: str, pos: int):  # noqa: N802 (Qt override)
        t = text.strip()
        try:
            v = float(t)
        except ValueError:
            allowed = set("0123456789.eE+-")
            ok = all(ch in allowed for ch in t)
            return QValidator.State.Intermediate if ok else QValidator.State.Invalid
        if not math.isfinite(v) or abs(v) > _FLOAT_LIMIT:
            return QValidator.State.Intermediate
        return QValidator.State.Acceptable

    def fixup(self, text: str) -> str:
        return self.textFromValue(self.value())


class _PathEdit(QWidget):
    """A line edit with a browse button for ``kind="path"`` fields."""

    textChanged = Signal(str)  # noqa: N815 (mirrors QLineEdit)

    def __init__(self, spec: ParamSpec, parent: QWidget | None = None):
        super().__init__(parent)
        self.edit = QLineEdit(self)
        browse = QToolButton(self)
        browse.setText("…")
        browse.setToolTip(f"Choose {spec.label.lower()}")
        browse.clicked.connect(self._browse)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        lay.addWidget(self.edit, 1)
        lay.addWidget(browse)
        self.edit.textChanged.connect(self.textChanged)

    def _browse(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Choose a file", self.edit.text())
        if path:
            self.edit.setText(path)

    def text(self) -> str:
        return self.edit.text()

    def setText(self, text: str) -> None:  # noqa: N802 (mirrors QLineEdit)
        self.edit.setText(text)


class _NoWheelUnlessFocused(QObject):
    """Scrolling a long form must not change the number under the mouse by accident."""

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt override)
        if event.type() == QEvent.Type.Wheel and isinstance(obj, QWidget) and not obj.hasFocus():
            event.ignore()
            return True
        return False


class ParamForm(QWidget):
    """Editable view of one config dataclass.

    ``config`` is the dataclass type or an instance (its values become the
    starting values). Fields marked ``cli_only`` and names in ``skip`` are not
    shown; :meth:`values` keeps their values from the last :meth:`set_values`.
    ``grouped``: one QGroupBox per ``Param.group`` (default: when there is more
    than one group). ``columns``: lay the groups out side by side in this many
    columns, keeping declaration order and balancing the number of rows.
    """

    changed = Signal()  # any field edited or set; read errors()/values() in the slot

    def __init__(
        self,
        config: Any,
        parent: QWidget | None = None,
        *,
        skip: Iterable[str] = (),
        grouped: bool | None = None,
        columns: int = 1,
    ):
        super().__init__(parent)
        self._cls = config if isinstance(config, type) else type(config)
        self._base = config if not isinstance(config, type) else self._cls()
        skipped = set(skip)
        self._specs = [s for s in param_specs(self._cls) if not s.param.cli_only and s.name not in skipped]
        self._widgets: dict[str, QWidget] = {}
        self._messages: dict[str, QLabel] = {}
        self._errors: dict[str, str] = {}
        self._wheel_guard = _NoWheelUnlessFocused(self)

        groups: dict[str, list[ParamSpec]] = {}
        for s in self._specs:
            groups.setdefault(s.param.group, []).append(s)
        if grouped is None:
            grouped = len(groups) > 1

        outer = QHBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        column_layouts = []
        for _ in range(max(1, columns) if grouped else 1):
            col = QVBoxLayout()
            col.setContentsMargins(0, 0, 0, 0)
            outer.addLayout(col, 1)
            column_layouts.append(col)
        for group, specs in groups.items():
            target = column_layouts[self._column_for(groups, group, len(column_layouts))]
            if grouped:
                box = QGroupBox(group, self)
                form = QFormLayout(box)
                target.addWidget(box)
            else:
                form = QFormLayout()
                target.addLayout(form)
            form.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
            for s in specs:
                self._add_row(form, s)
        for col in column_layouts:
            col.addStretch(1)
        self.set_values(self._base)

    @staticmethod
    def _column_for(groups: dict[str, list[ParamSpec]], group: str, columns: int) -> int:
        """Fill columns in order, moving on once a column holds its share of the rows."""
        if columns <= 1:
            return 0
        names = list(groups)
        sizes = [len(groups[g]) + 1 for g in names]  # +1: the group box's title
        share = sum(sizes) / columns
        col, used = 0, 0.0
        for name, size in zip(names, sizes, strict=True):
            if used and used + size / 2 > share * (col + 1) and col < columns - 1:
                col += 1
            if name == group:
                return col
            used += size
        return col

    # -- building ---------------------------------------------------------------------------

    def _make_widget(self, spec: ParamSpec) -> QWidget:
        kind = spec.kind
        if kind == "int":
            w: QWidget = IntBox(spec, self)
            w.valueChanged.connect(self._on_edit)
            w.lineEdit().textEdited.connect(self._on_edit)
        elif kind == "float":
            w = FloatBox(spec, self)
            w.valueChanged.connect(self._on_edit)
            w.lineEdit().textEdited.connect(self._on_edit)
        elif kind == "bool":
            w = QCheckBox(self)
            w.toggled.connect(self._on_edit)
        elif kind == "choice":
            w = QComboBox(self)
            w.addItems(list(spec.param.choices))
            w.currentIndexChanged.connect(self._on_edit)
        elif kind == "path":
            w = _PathEdit(spec, self)
            w.textChanged.connect(self._on_edit)
        else:
            w = QLineEdit(self)
            w.textChanged.connect(self._on_edit)
        if isinstance(w, QAbstractSpinBox):
            w.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
            w.installEventFilter(self._wheel_guard)
            w.setKeyboardTracking(True)
            w.setAlignment(Qt.AlignmentFlag.AlignRight)
        return w

    def _add_row(self, form: QFormLayout, spec: ParamSpec) -> None:
        w = self._make_widget(spec)
        w.setObjectName(spec.name)
        p = spec.param
        tip = p.help
        if p.low is not None and p.high is not None:
            tip += f"\nRange {p.low:g} … {p.high:g}. Default {spec.default!r}."
        w.setToolTip(tip)
        label = QLabel(spec.label, self)
        label.setToolTip(tip)
        label.setBuddy(w)
        msg = QLabel(self)
        msg.setStyleSheet(f"color: {ERROR_COLOR};")
        msg.setWordWrap(True)
        msg.setVisible(False)
        msg.setObjectName(f"{spec.name}_error")
        field = QWidget(self)
        col = QVBoxLayout(field)
        col.setContentsMargins(0, 0, 0, 0)
        col.setSpacing(1)
        col.addWidget(w)
        col.addWidget(msg)
        form.addRow(label, field)
        self._widgets[spec.name] = w
        self._messages[spec.name] = msg

    # -- reading and writing ----------------------------------------------------------------

    def specs(self) -> list[ParamSpec]:
        """The fields shown, in order."""
        return list(self._specs)

    def widget(self, name: str) -> QWidget:
        """The editor of one field (for tests, and for callers that add a hint next to it)."""
        return self._widgets[name]

    def _read(self, spec: ParamSpec) -> tuple[Any, str | None]:
        """The value shown for ``spec`` and, if the text is not a number yet, why."""
        w = self._widgets[spec.name]
        if isinstance(w, QAbstractSpinBox):
            if not w.hasAcceptableInput():
                text = w.lineEdit().text().strip()
                return w.value(), f"{spec.name}: '{text}' is not a number" if text else f"{spec.name} is empty"
            # value() lags behind the text while typing; interpret the text unless it is
            # just the display of value() (which may round, e.g. a preset's 1.6180339).
            text = w.lineEdit().text()
            value = w.value() if text == w.textFromValue(w.value()) else w.valueFromText(text)
            return (int(value) if spec.kind == "int" else float(value)), None
        if isinstance(w, QCheckBox):
            return w.isChecked(), None
        if isinstance(w, QComboBox):
            return w.currentText(), None
        return w.text(), None

    def values(self):
        """The config shown, as a dataclass instance (hidden fields from the last ``set_values``)."""
        return self._base.replace(**{s.name: self._read(s)[0] for s in self._specs})

    def set_values(self, config: Any) -> None:
        """Show ``config`` (an instance, or a dict of field values); out-of-range values are kept and marked."""
        if isinstance(config, dict):
            config = self._cls.from_dict({**self._base.to_dict(), **config})
        self._base = config
        for s in self._specs:
            w = self._widgets[s.name]
            v = getattr(config, s.name)
            w.blockSignals(True)
            try:
                if isinstance(w, IntBox):
                    w.setValue(int(max(-_INT_LIMIT, min(_INT_LIMIT, v))))
                elif isinstance(w, FloatBox):
                    w.setValue(float(v))
                elif isinstance(w, QCheckBox):
                    w.setChecked(bool(v))
                elif isinstance(w, QComboBox):
                    w.setCurrentText(str(v))
                else:
                    w.setText(str(v))
            finally:
                w.blockSignals(False)
        self._validate()
        self.changed.emit()

    def errors(self) -> list[str]:
        """Why the values cannot be used, one sentence per field; empty when all are valid."""
        return list(self._errors.values())

    def field_errors(self) -> dict[str, str]:
        """Same as :meth:`errors`, keyed by field name."""
        return dict(self._errors)

    # -- validation -------------------------------------------------------------------------

    def _on_edit(self, *_: Any) -> None:
        self._validate()
        self.changed.emit()

    def _validate(self) -> None:
        self._errors.clear()
        for s in self._specs:
            value, text_problem = self._read(s)
            msg = text_problem or check_value(s, value)
            w = self._widgets[s.name]
            label = self._messages[s.name]
            if msg:
                self._errors[s.name] = msg
                w.setStyleSheet(INVALID_STYLE)
                label.setText(msg)
                label.setVisible(True)
            else:
                if w.styleSheet():
                    w.setStyleSheet("")
                label.setVisible(False)
