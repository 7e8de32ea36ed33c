"""Form widgets shared by the admin pages."""

from __future__ import annotations

from django import forms


class DatalistInput(forms.TextInput):
    """A text input with suggestions (an HTML <datalist>): pick one or type another value.

    `options` are (value, label) pairs; assign a new list per form (widgets are copied
    shallowly per form instance, so don't mutate it in place)."""

    template_name = "core/widgets/datalist.html"

    def __init__(self, attrs=None, options: list[tuple[str, str]] | None = None):
        super().__init__(attrs)
        self.options = list(options or [])

    def get_context(self, name, value, attrs):
        context = super().get_context(name, value, attrs)
        widget = context["widget"]
        widget["list_id"] = f"{widget['attrs'].get('id') or name}-options"
        widget["attrs"]["list"] = widget["list_id"]
        widget["options"] = self.options
        return context
