"""ComfyUI's prompt validation, done by sparkplane before a prompt is stored.

Pure: a prompt and node definitions (`/object_info` entries) in, ComfyUI's
answer out (`Verdict`), with the same error types and bodies as ComfyUI 0.3.64
(`invalid_prompt`, `prompt_no_outputs`, `prompt_outputs_failed_validation`
with per-input `required_input_missing`, `invalid_input_type`,
`value_smaller_than_min`, `value_bigger_than_max`, `value_not_in_list`,
`return_type_mismatch`, `bad_linked_input`, `custom_validation_failed`,
`exception_during_inner_validation`). If at least one output is valid the
prompt is accepted and `node_errors` lists the invalid branches, as in ComfyUI.

Inputs that name an uploaded file (LoadImage's `image`) are checked against the
caller's uploads instead of a device's folder.
"""

from __future__ import annotations

import traceback
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sparkplane.backends.workflow import is_upload_input

Definitions = Mapping[str, dict[str, Any]]
_CONVERT = {"INT": int, "FLOAT": float, "STRING": str, "BOOLEAN": bool}
_PACKAGE = str(Path(__file__).resolve().parent.parent)
_MESSAGES = {
    "required_input_missing": "Required input is missing",
    "value_not_in_list": "Value not in list",
}


@dataclass(slots=True)
class Verdict:
    """ComfyUI's answer to a prompt: accepted (with the outputs to run) or not."""

    ok: bool
    error: dict[str, Any] | None = None
    outputs: list[str] = field(default_factory=list)
    node_errors: dict[str, Any] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        """The 400 body: {"error", "node_errors"}."""
        return {"error": self.error, "node_errors": self.node_errors}


def error(kind: str, message: str, details: str = "", **extra: Any) -> dict[str, Any]:
    """One ComfyUI error object."""
    return {"type": kind, "message": message, "details": details, "extra_info": extra}


def invalid_prompt(message: str, node_id: Any) -> Verdict:
    """The `invalid_prompt` answer (unknown class, missing class_type...)."""
    return Verdict(False, error("invalid_prompt", message, f"Node ID '#{node_id}'"))


def no_prompt() -> Verdict:
    """The answer to a body without `prompt`."""
    return Verdict(False, error("no_prompt", "No prompt provided", "No prompt provided"))


def _type_name(exc: BaseException) -> str:
    klass = type(exc)
    return (
        klass.__qualname__
        if klass.__module__ == "builtins"
        else f"{klass.__module__}.{klass.__qualname__}"
    )


def _traceback(exc: BaseException) -> list[str]:
    """ComfyUI's traceback entries, with paths shown as "sparkplane/...": no server path leaks."""
    return [
        f'  File "{f.filename.replace(_PACKAGE, "sparkplane")}", line {f.lineno}, in {f.name}\n'
        f"    {f.line}\n"
        for f in traceback.extract_tb(exc.__traceback__)
    ]


def _matches(received: Any, expected: Any) -> bool:
    if received == expected or "*" in (received, expected):
        return True
    if isinstance(expected, list) and received == "COMBO":
        return True
    if not isinstance(received, str) or not isinstance(expected, str):
        return False
    return bool({t.strip() for t in received.split(",")} & {t.strip() for t in expected.split(",")})


class _Validator:
    def __init__(self, prompt: dict[str, Any], definitions: Definitions, uploads: Collection[str]):
        self.prompt = prompt
        self.definitions = definitions
        self.uploads = uploads
        self.done: dict[Any, tuple[bool, list[dict[str, Any]]]] = {}

    def node(self, node_id: Any) -> tuple[bool, list[dict[str, Any]]]:
        if node_id in self.done:
            return self.done[node_id]
        node = self.prompt[node_id]
        inputs = node["inputs"]
        definition = self.definitions[node["class_type"]]
        declared = definition.get("input") or {}
        errors: list[dict[str, Any]] = []
        valid = True
        for section in ("required", "optional"):
            for name, spec in (declared.get(section) or {}).items():
                kind = spec[0]
                options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
                config = [kind, options]
                if name not in inputs:
                    if section == "required":
                        errors.append(_known("required_input_missing", name, input_name=name))
                    continue
                value = inputs[name]
                if isinstance(value, list):
                    ok, problem = self.link(name, value, config, kind)
                    valid = valid and ok
                elif is_upload_input(spec):
                    problem = self.upload(name, value)
                else:
                    problem = self.literal(inputs, name, value, config, kind, options)
                if problem is not None:
                    errors.append(problem)
        result = (not errors and valid, errors)
        self.done[node_id] = result
        return result

    def link(
        self, name: str, value: list[Any], config: list[Any], kind: Any
    ) -> tuple[bool, dict[str, Any] | None]:
        if len(value) != 2:
            return True, error(
                "bad_linked_input",
                "Bad linked input, must be a length-2 list of [node_id, slot_index]",
                name,
                input_name=name,
                input_config=config,
                received_value=value,
            )
        # A missing node or output slot raises here, out of this node's validation, and
        # is filed by the node that linked to this one (ComfyUI's own quirk, recorded).
        source = self.prompt[value[0]]
        received = tuple(self.definitions[source["class_type"]].get("output", []))[value[1]]
        if not _matches(received, kind):
            return True, error(
                "return_type_mismatch",
                "Return type mismatch between linked nodes",
                f"{name}, received_type({received}) mismatch input_type({kind})",
                input_name=name,
                input_config=config,
                received_type=received,
                linked_node=value,
            )
        try:
            ok, _ = self.node(value[0])
        except Exception as exc:  # noqa: BLE001 - ComfyUI reports whatever the lookup raised
            self.done[value[0]] = (
                False,
                [
                    error(
                        "exception_during_inner_validation",
                        "Exception when validating inner node",
                        str(exc),
                        input_name=name,
                        input_config=config,
                        exception_message=str(exc),
                        exception_type=_type_name(exc),
                        traceback=_traceback(exc),
                        linked_node=value,
                    )
                ],
            )
            return False, None
        return ok, None

    def upload(self, name: str, value: Any) -> dict[str, Any] | None:
        if isinstance(value, str) and value in self.uploads:
            return None
        return error(
            "custom_validation_failed",
            "Custom validation failed for node",
            f"{name} - Invalid image file: {value}",
            input_name=name,
        )

    def literal(
        self,
        inputs: dict[str, Any],
        name: str,
        value: Any,
        config: list[Any],
        kind: Any,
        options: dict[str, Any],
    ) -> dict[str, Any] | None:
        try:
            if isinstance(value, dict) and "__value__" in value:
                value = inputs[name] = value["__value__"]
            if isinstance(kind, str) and kind in _CONVERT:
                value = inputs[name] = _CONVERT[kind](value)
        except Exception as exc:  # noqa: BLE001 - any conversion failure is ComfyUI's error
            return error(
                "invalid_input_type",
                f"Failed to convert an input value to a {kind} value",
                f"{name}, {value}, {exc}",
                input_name=name,
                input_config=config,
                received_value=value,
                exception_message=str(exc),
            )
        seen = {"input_name": name, "input_config": config, "received_value": value}
        try:
            if "min" in options and value < options["min"]:
                message = f"Value {value} smaller than min of {options['min']}"
                return error("value_smaller_than_min", message, name, **seen)
            if "max" in options and value > options["max"]:
                message = f"Value {value} bigger than max of {options['max']}"
                return error("value_bigger_than_max", message, name, **seen)
        except TypeError:
            pass
        if isinstance(kind, list) and value not in kind:
            listed = str(kind)
            if len(kind) > 20:  # ComfyUI does not echo long lists (model files) back
                listed = f"(list of length {len(kind)})"
                seen["input_config"] = None
            return _known("value_not_in_list", f"{name}: '{value}' not in {listed}", **seen)
        return None


def _known(kind: str, details: str, **extra: Any) -> dict[str, Any]:
    return error(kind, _MESSAGES[kind], details, **extra)


def validate(
    prompt: Any,
    definitions: Definitions,
    uploads: Collection[str] = (),
    targets: list[str] | None = None,
) -> Verdict:
    """ComfyUI's validate_prompt over `definitions` (class name -> /object_info entry)."""
    if not isinstance(prompt, dict):
        return Verdict(
            False,
            error(
                "invalid_prompt",
                "Prompt is not an object",
                "",
            ),
        )
    outputs: list[str] = []
    for node_id, node in prompt.items():
        if not isinstance(node, dict) or "class_type" not in node:
            return invalid_prompt(
                "Cannot execute because a node is missing the class_type property.", node_id
            )
        class_type = node["class_type"]
        if class_type not in definitions:
            return invalid_prompt(
                f"Cannot execute because node {class_type} does not exist.", node_id
            )
        if not isinstance(node.get("inputs"), dict):
            node["inputs"] = {}
        output_node = definitions[class_type].get("output_node", False)
        if output_node and (targets is None or node_id in targets):
            outputs.append(node_id)
    if not outputs:
        return Verdict(False, error("prompt_no_outputs", "Prompt has no outputs"))
    checker = _Validator(prompt, definitions, uploads)
    good: list[str] = []
    failed: list[dict[str, Any]] = []
    node_errors: dict[str, Any] = {}
    for output in outputs:
        try:
            ok, reasons = checker.node(output)
        except Exception as exc:  # noqa: BLE001 - ComfyUI reports it as the output's error
            ok = False
            reasons = [
                error(
                    "exception_during_validation",
                    "Exception when validating node",
                    str(exc),
                    exception_type=_type_name(exc),
                    traceback=_traceback(exc),
                )
            ]
            checker.done[output] = (False, reasons)
        if ok:
            good.append(output)
            continue
        failed.extend(reasons)
        for node_id, (node_ok, node_reasons) in checker.done.items():
            if not node_ok and node_reasons:
                entry = node_errors.setdefault(
                    node_id,
                    {
                        "errors": node_reasons,
                        "dependent_outputs": [],
                        "class_type": prompt[node_id]["class_type"],
                    },
                )
                entry["dependent_outputs"].append(output)
    if not good:
        details = "\n".join(f"{e['message']}: {e['details']}" for e in failed)
        return Verdict(
            False,
            error("prompt_outputs_failed_validation", "Prompt outputs failed validation", details),
            node_errors=node_errors,
        )
    return Verdict(True, outputs=good, node_errors=node_errors)


def denied(prompt: dict[str, Any], deny: Collection[str]) -> Verdict | None:
    """The answer to a prompt that uses a node class on the deny list, or None."""
    for node_id, node in prompt.items():
        if isinstance(node, dict) and node.get("class_type") in deny:
            return invalid_prompt(
                f"Cannot execute because node {node['class_type']} is not allowed on this "
                "server (comfy_deny_nodes).",
                node_id,
            )
    return None
