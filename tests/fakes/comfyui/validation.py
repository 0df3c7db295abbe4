"""POST /prompt validation, reproducing ComfyUI 0.3.64's rules and error bodies.

The errors come from the node definitions (input types, min/max, combos, links), never
from a table of answers. Known quirks kept on purpose:

- A link to a missing node or an out-of-range output slot raises inside the *linked*
  node's validation; the error is filed under that node but carries the input name,
  input config and link of the node that followed the link
  ("exception_during_inner_validation", as recorded).
- Inputs are converted in place (int("64") -> 64), so the queued prompt, history and
  the PNG metadata hold converted values.
- dependent_outputs is appended to every failing node each time an output fails.
- With no valid output: 400 "prompt_outputs_failed_validation" whose details list the
  output nodes' own errors; with at least one valid output: 200 and node_errors.
"""

from __future__ import annotations

from typing import Any

from tests.fakes.comfyui import tracebacks
from tests.fakes.comfyui.catalog import Catalog

Result = tuple[bool, list[dict[str, Any]], str]


class _Located(Exception):
    """An exception raised at a known line of ComfyUI's validate_inputs."""

    def __init__(self, error: Exception, line: int) -> None:
        super().__init__(str(error))
        self.error = error
        self.line = line


def full_type_name(error: BaseException) -> str:
    """`KeyError`, or `module.Class` outside builtins, as ComfyUI reports types."""
    klass = type(error)
    if klass.__module__ == "builtins":
        return klass.__qualname__
    return f"{klass.__module__}.{klass.__qualname__}"


def node_input_matches(received: Any, expected: Any) -> bool:
    """validate_node_input: equal, "*" on either side, or overlapping "A,B" lists."""
    if received == expected or "*" in (received, expected):
        return True
    if isinstance(expected, list) and received == "COMBO":
        return True
    if not isinstance(received, str) or not isinstance(expected, str):
        return False
    got = {t.strip() for t in received.split(",")}
    want = {t.strip() for t in expected.split(",")}
    return bool(got & want)


class _Validator:
    def __init__(self, prompt: Any, catalog: Catalog) -> None:
        self.prompt = prompt
        self.catalog = catalog
        self.validated: dict[Any, Result] = {}

    def linked_type(self, link: list[Any]) -> Any:
        try:
            class_type = self.prompt[link[0]]["class_type"]
        except Exception as exc:
            raise _Located(exc, tracebacks.VALIDATE_LINKED_NODE_LINE) from exc
        returns = self.catalog.spec(class_type).return_types
        try:
            return returns[link[1]]
        except Exception as exc:
            raise _Located(exc, tracebacks.VALIDATE_LINKED_SLOT_LINE) from exc

    def inputs(self, unique_id: Any) -> Result:
        if unique_id in self.validated:
            return self.validated[unique_id]
        inputs = self.prompt[unique_id]["inputs"]
        class_type = self.prompt[unique_id]["class_type"]
        class_inputs = self.catalog.input_types(class_type)
        custom = self.catalog.custom_check(class_type)
        custom_args = custom[0] if custom else ()
        errors: list[dict[str, Any]] = []
        valid = True
        categories = ("required", "optional")
        for category in categories:
            for name, spec in class_inputs.get(category, {}).items():
                input_type = spec[0]
                extra_info = spec[1] if len(spec) > 1 else {}
                info = [input_type, extra_info]
                if name not in inputs:
                    if category == "required":
                        errors.append(_error("required_input_missing", name, {"input_name": name}))
                    continue
                val = inputs[name]
                if isinstance(val, list):
                    ok, error = self.link(name, val, info, input_type)
                    if error is not None:
                        errors.append(error)
                    valid = valid and ok
                    continue
                error = self.literal(inputs, name, val, info, input_type, extra_info, custom_args)
                if error is not None:
                    errors.append(error)
        if custom is not None:
            errors.extend(_custom_errors(inputs, class_inputs, custom))
        result: Result = (not errors and valid, errors, unique_id)
        self.validated[unique_id] = result
        return result

    def link(
        self, name: str, val: list[Any], info: list[Any], input_type: Any
    ) -> tuple[bool, dict[str, Any] | None]:
        if len(val) != 2:
            extra = {"input_name": name, "input_config": info, "received_value": val}
            return True, {
                "type": "bad_linked_input",
                "message": "Bad linked input, must be a length-2 list of [node_id, slot_index]",
                "details": name,
                "extra_info": extra,
            }
        received = self.linked_type(val)
        if not node_input_matches(received, input_type):
            return True, {
                "type": "return_type_mismatch",
                "message": "Return type mismatch between linked nodes",
                "details": f"{name}, received_type({received}) mismatch input_type({input_type})",
                "extra_info": {
                    "input_name": name,
                    "input_config": info,
                    "received_type": received,
                    "linked_node": val,
                },
            }
        try:
            result = self.inputs(val[0])
        except Exception as exc:
            cause = exc.error if isinstance(exc, _Located) else exc
            line = exc.line if isinstance(exc, _Located) else None
            self.validated[val[0]] = (
                False,
                [
                    {
                        "type": "exception_during_inner_validation",
                        "message": "Exception when validating inner node",
                        "details": str(cause),
                        "extra_info": {
                            "input_name": name,
                            "input_config": info,
                            "exception_message": str(cause),
                            "exception_type": full_type_name(cause),
                            "traceback": tracebacks.inner_validation(self.catalog.root, line),
                            "linked_node": val,
                        },
                    }
                ],
                val[0],
            )
            return False, None
        return result[0] is not False, None

    def literal(
        self,
        inputs: dict[str, Any],
        name: str,
        val: Any,
        info: list[Any],
        input_type: Any,
        extra_info: dict[str, Any],
        custom_args: tuple[str, ...],
    ) -> dict[str, Any] | None:
        try:
            if isinstance(val, dict) and "__value__" in val:
                val = inputs[name] = val["__value__"]
            converter = {"INT": int, "FLOAT": float, "STRING": str, "BOOLEAN": bool}
            if isinstance(input_type, str) and input_type in converter:
                val = inputs[name] = converter[input_type](val)
        except Exception as exc:
            return {
                "type": "invalid_input_type",
                "message": f"Failed to convert an input value to a {input_type} value",
                "details": f"{name}, {val}, {exc}",
                "extra_info": {
                    "input_name": name,
                    "input_config": info,
                    "received_value": val,
                    "exception_message": str(exc),
                },
            }
        if name in custom_args:
            return None
        extra = {"input_name": name, "input_config": info, "received_value": val}
        if "min" in extra_info and val < extra_info["min"]:
            return _error(
                "value_smaller_than_min",
                name,
                extra,
                f"Value {val} smaller than min of {extra_info['min']}",
            )
        if "max" in extra_info and val > extra_info["max"]:
            return _error(
                "value_bigger_than_max",
                name,
                extra,
                f"Value {val} bigger than max of {extra_info['max']}",
            )
        if isinstance(input_type, list) and val not in input_type:
            listed = str(input_type)
            if len(input_type) > 20:
                # ComfyUI does not echo long lists (scanned model files) back.
                listed = f"(list of length {len(input_type)})"
                extra["input_config"] = None
            return _error("value_not_in_list", f"{name}: '{val}' not in {listed}", extra)
        return None


def _error(
    kind: str, details: str, extra_info: dict[str, Any], message: str | None = None
) -> dict[str, Any]:
    messages = {
        "required_input_missing": "Required input is missing",
        "value_not_in_list": "Value not in list",
    }
    return {
        "type": kind,
        "message": message or messages[kind],
        "details": details,
        "extra_info": extra_info,
    }


def _custom_errors(
    inputs: dict[str, Any], class_inputs: dict[str, Any], custom: Any
) -> list[dict[str, Any]]:
    arg_names, check = custom
    known = {**class_inputs.get("required", {}), **class_inputs.get("optional", {})}
    values = {
        name: inputs[name]
        for name in inputs
        if name in arg_names and name in known and not isinstance(inputs[name], list)
    }
    result = check(values)
    if result is True:
        return []
    errors = []
    for name in values:
        details = name if result is False else f"{name} - {result}"
        errors.append(
            {
                "type": "custom_validation_failed",
                "message": "Custom validation failed for node",
                "details": details,
                "extra_info": {"input_name": name},
            }
        )
    return errors


def validate_prompt(
    prompt: Any, catalog: Catalog, targets: list[str] | None = None
) -> tuple[bool, dict[str, Any] | None, list[str], dict[str, Any]]:
    """(valid, error, outputs to execute, node_errors), as execution.validate_prompt."""
    outputs = []
    for node_id in prompt:
        if "class_type" not in prompt[node_id]:
            return (
                False,
                _invalid(
                    "Cannot execute because a node is missing the class_type property.", node_id
                ),
                [],
                {},
            )
        class_type = prompt[node_id]["class_type"]
        if class_type not in catalog:
            return (
                False,
                _invalid(f"Cannot execute because node {class_type} does not exist.", node_id),
                [],
                {},
            )
        if catalog.spec(class_type).output_node and (targets is None or node_id in targets):
            outputs.append(node_id)
    if not outputs:
        error = {
            "type": "prompt_no_outputs",
            "message": "Prompt has no outputs",
            "details": "",
            "extra_info": {},
        }
        return False, error, [], {}

    validator = _Validator(prompt, catalog)
    good: list[str] = []
    failures: list[tuple[str, list[dict[str, Any]]]] = []
    node_errors: dict[str, Any] = {}
    for output in outputs:
        try:
            valid, reasons, _ = validator.inputs(output)
        except Exception as exc:
            cause = exc.error if isinstance(exc, _Located) else exc
            line = exc.line if isinstance(exc, _Located) else None
            valid = False
            reasons = [
                {
                    "type": "exception_during_validation",
                    "message": "Exception when validating node",
                    "details": str(cause),
                    "extra_info": {
                        "exception_type": full_type_name(cause),
                        "traceback": tracebacks.outer_validation(catalog.root, line),
                    },
                }
            ]
            validator.validated[output] = (False, reasons, output)
        if valid is True:
            good.append(output)
            continue
        failures.append((output, reasons))
        for node_id, (ok, node_reasons, _) in validator.validated.items():
            if ok is not True and node_reasons:
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
        details = "\n".join(
            f"{e['message']}: {e['details']}" for _, reasons in failures for e in reasons
        )
        error = {
            "type": "prompt_outputs_failed_validation",
            "message": "Prompt outputs failed validation",
            "details": details,
            "extra_info": {},
        }
        return False, error, [], node_errors
    return True, None, good, node_errors


def _invalid(message: str, node_id: Any) -> dict[str, Any]:
    return {
        "type": "invalid_prompt",
        "message": message,
        "details": f"Node ID '#{node_id}'",
        "extra_info": {},
    }
