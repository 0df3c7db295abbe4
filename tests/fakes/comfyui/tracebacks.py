"""Traceback lists shaped like ComfyUI 0.3.64's `traceback.format_tb()` output.

The fake cannot send the real server's frames, so it sends the recorded ones: file,
line number and function of each frame, under the fake's own root folder. Line numbers
come from the recordings except VALIDATE_PROMPT_CALL_LINE, read from the public
execution.py of that era (not recorded). Source lines are a placeholder.
"""

from __future__ import annotations

VALIDATE_LINKED_NODE_LINE = 788  # prompt[o_id]['class_type'] (KeyError for a missing node)
VALIDATE_LINKED_SLOT_LINE = 790  # RETURN_TYPES[val[1]] (IndexError for a bad slot)
VALIDATE_RECURSE_LINE = 808  # the recursive validate_inputs call
VALIDATE_PROMPT_CALL_LINE = 1010  # validate_prompt calling validate_inputs (not recorded)

SOURCE_PLACEHOLDER = "(source line not available in the fake ComfyUI)"

_EXECUTE_FRAMES = [
    ("execution.py", 496, "execute"),
    ("execution.py", 315, "get_output_data"),
    ("execution.py", 289, "_async_map_node_over_list"),
    ("execution.py", 277, "process_inputs"),
]


def frame(path: str, line: int, function: str) -> str:
    """One entry of format_tb()."""
    return f'  File "{path}", line {line}, in {function}\n    {SOURCE_PLACEHOLDER}\n'


def inner_validation(root: str, line: int | None) -> list[str]:
    """Frames of an exception caught around the recursive validate_inputs call."""
    frames = [frame(f"{root}/execution.py", VALIDATE_RECURSE_LINE, "validate_inputs")]
    if line is not None:
        frames.append(frame(f"{root}/execution.py", line, "validate_inputs"))
    return frames


def outer_validation(root: str, line: int | None) -> list[str]:
    """Frames of an exception raised while validating an output node itself."""
    frames = [frame(f"{root}/execution.py", VALIDATE_PROMPT_CALL_LINE, "validate_prompt")]
    if line is not None:
        frames.append(frame(f"{root}/execution.py", line, "validate_inputs"))
    return frames


def load_image_failure(root: str, venv: str) -> list[str]:
    """The recorded frames of LoadImage opening a file Pillow cannot identify."""
    frames = [frame(f"{root}/{name}", line, func) for name, line, func in _EXECUTE_FRAMES]
    frames.append(frame(f"{root}/nodes.py", 1647, "load_image"))
    frames.append(frame(f"{root}/node_helpers.py", 31, "pillow"))
    frames.append(frame(f"{venv}/lib/python3.11/site-packages/PIL/Image.py", 3730, "open"))
    return frames


def node_failure(root: str, function: str) -> list[str]:
    """Frames for an injected failure inside a node's function (shape, not recorded)."""
    frames = [frame(f"{root}/{name}", line, func) for name, line, func in _EXECUTE_FRAMES]
    frames.append(frame(f"{root}/nodes.py", 1, function))
    return frames
