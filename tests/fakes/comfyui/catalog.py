"""The node classes one fake server offers, as /object_info and validation see them."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from tests.fakes.comfyui.config import NodeSpec
from tests.fakes.comfyui.files import Folders

# A class with VALIDATE_INPUTS: the argument names it takes, and the check itself
# (returns True or a reason string), as in ComfyUI's custom validation.
CustomCheck = tuple[tuple[str, ...], Callable[[dict[str, Any]], "bool | str"]]


class Catalog:
    """Node specs plus the parts of their definitions that depend on the folders."""

    def __init__(self, specs: dict[str, NodeSpec], folders: Folders) -> None:
        self._specs = dict(specs)
        self._folders = folders
        # Paths in error messages and tracebacks: the fake's base folder stands in for
        # the ComfyUI checkout, and a venv/ inside it for site-packages' prefix.
        self.root = str(folders.base)
        self.venv = str(folders.base / "venv")

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def names(self) -> list[str]:
        """Class names in registration order."""
        return list(self._specs)

    def spec(self, name: str) -> NodeSpec:
        """The spec of a class (KeyError if unknown, like NODE_CLASS_MAPPINGS)."""
        return self._specs[name]

    def definition(self, name: str) -> dict[str, Any]:
        """The /object_info entry, with LoadImage's choices read from input/."""
        spec = self._specs[name]
        entry = copy.deepcopy(spec.definition)
        if spec.behavior == "LoadImage":
            entry["input"]["required"]["image"][0] = self._folders.input_images()
        return entry

    def input_types(self, name: str) -> dict[str, Any]:
        """INPUT_TYPES(): {"required": ..., "optional": ..., "hidden": ...}."""
        return dict(self.definition(name)["input"])

    def custom_check(self, name: str) -> CustomCheck | None:
        """The VALIDATE_INPUTS of a class, if it has one."""
        if self._specs[name].behavior != "LoadImage":
            return None
        folders = self._folders

        def check(values: dict[str, Any]) -> bool | str:
            image = values["image"]
            if not folders.annotated_path(image).exists():
                return f"Invalid image file: {image}"
            return True

        return ("s", "image"), check
