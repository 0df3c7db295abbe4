"""Synthetic node classes (not recorded) for graphs that need model files.

The entries are shaped like ComfyUI's own (input specs, input_order, outputs); the
combo lists come from the model files a test gives each fake device, so devices can
differ in node classes and in files. They run with the "generic" behaviour: outputs
are opaque values, IMAGE outputs are solid frames sized from upstream width/height.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from tests.fakes.comfyui.config import FakeComfyConfig, NodeSpec

SAMPLERS = [
    "euler", "euler_cfg_pp", "euler_ancestral", "euler_ancestral_cfg_pp", "heun", "heunpp2",
    "dpm_2", "dpm_2_ancestral", "lms", "dpm_fast", "dpm_adaptive", "dpmpp_2s_ancestral",
    "dpmpp_2s_ancestral_cfg_pp", "dpmpp_sde", "dpmpp_sde_gpu", "dpmpp_2m", "dpmpp_2m_cfg_pp",
    "dpmpp_2m_sde", "dpmpp_2m_sde_gpu", "dpmpp_3m_sde", "dpmpp_3m_sde_gpu", "ddpm", "lcm",
    "ipndm", "ipndm_v", "deis", "res_multistep", "ddim", "uni_pc", "uni_pc_bh2",
]  # fmt: skip
SCHEDULERS = ["simple", "sgm_uniform", "karras", "exponential", "ddim_uniform", "beta", "normal"]
MAX_RESOLUTION = 16384


def node_definition(
    name: str,
    required: dict[str, list[Any]],
    outputs: list[str],
    *,
    optional: dict[str, list[Any]] | None = None,
    output_node: bool = False,
    category: str = "",
    display_name: str | None = None,
    description: str = "",
    python_module: str = "nodes",
) -> dict[str, Any]:
    """An /object_info entry with the keys every recorded entry has."""
    inputs: dict[str, Any] = {"required": required}
    order: dict[str, list[str]] = {"required": list(required)}
    if optional:
        inputs["optional"] = optional
        order["optional"] = list(optional)
    return {
        "input": inputs,
        "input_order": order,
        "output": outputs,
        "output_is_list": [False] * len(outputs),
        "output_name": list(outputs),
        "name": name,
        "display_name": display_name if display_name is not None else name,
        "description": description,
        "python_module": python_module,
        "category": category,
        "output_node": output_node,
    }


def custom_node(
    name: str,
    required: dict[str, list[Any]],
    outputs: list[str],
    *,
    output_node: bool = False,
    seconds: float = 0.0,
    python_module: str = "custom_nodes.fake",
) -> NodeSpec:
    """Any extra node class a test wants on one device only (runs generically)."""
    definition = node_definition(
        name, required, outputs, output_node=output_node, python_module=python_module
    )
    return NodeSpec(definition=definition, seconds=seconds)


def checkpoint_loader(checkpoints: list[str], seconds: float = 0.0) -> NodeSpec:
    """CheckpointLoaderSimple with `checkpoints` as its ckpt_name choices."""
    definition = node_definition(
        "CheckpointLoaderSimple",
        {
            "ckpt_name": [
                sorted(checkpoints),
                {"tooltip": "The name of the checkpoint (model) to load."},
            ]
        },
        ["MODEL", "CLIP", "VAE"],
        category="loaders",
        display_name="Load Checkpoint",
        description=(
            "Loads a diffusion model checkpoint, diffusion models are used to denoise latents."
        ),
    )
    return NodeSpec(definition=definition, seconds=seconds)


def lora_loader(loras: list[str], seconds: float = 0.0) -> NodeSpec:
    """LoraLoader with `loras` as its lora_name choices."""
    strength = ["FLOAT", {"default": 1.0, "min": -100.0, "max": 100.0, "step": 0.01}]
    definition = node_definition(
        "LoraLoader",
        {
            "model": ["MODEL", {"tooltip": "The diffusion model the LoRA will be applied to."}],
            "clip": ["CLIP", {"tooltip": "The CLIP model the LoRA will be applied to."}],
            "lora_name": [sorted(loras), {"tooltip": "The name of the LoRA."}],
            "strength_model": copy.deepcopy(strength),
            "strength_clip": copy.deepcopy(strength),
        },
        ["MODEL", "CLIP"],
        category="loaders",
        display_name="Load LoRA",
        description="LoRAs are used to modify diffusion and CLIP models.",
    )
    return NodeSpec(definition=definition, seconds=seconds)


def ksampler(step_seconds: float = 0.0, previews: bool = False) -> NodeSpec:
    """KSampler: one progress step per `steps`, optional JPEG previews per step."""
    definition = node_definition(
        "KSampler",
        {
            "model": ["MODEL"],
            "seed": [
                "INT",
                {"default": 0, "min": 0, "max": 0xFFFFFFFFFFFFFFFF, "control_after_generate": True},
            ],
            "steps": ["INT", {"default": 20, "min": 1, "max": 10000}],
            "cfg": [
                "FLOAT",
                {"default": 8.0, "min": 0.0, "max": 100.0, "step": 0.1, "round": 0.01},
            ],
            "sampler_name": [list(SAMPLERS)],
            "scheduler": [list(SCHEDULERS)],
            "positive": ["CONDITIONING"],
            "negative": ["CONDITIONING"],
            "latent_image": ["LATENT"],
            "denoise": ["FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.01}],
        },
        ["LATENT"],
        category="sampling",
        description=(
            "Uses the provided model, positive and negative conditioning to denoise the "
            "latent image."
        ),
    )
    return NodeSpec(
        definition=definition, progress_input="steps", step_seconds=step_seconds, previews=previews
    )


def txt2img_nodes(
    checkpoints: list[str], loras: Sequence[str] = (), step_seconds: float = 0.0
) -> list[NodeSpec]:
    """The classes of a classic text-to-image graph, with these model files."""
    size = {"min": 16, "max": MAX_RESOLUTION, "step": 8}
    return [
        checkpoint_loader(checkpoints),
        lora_loader(list(loras)),
        ksampler(step_seconds=step_seconds),
        NodeSpec(
            node_definition(
                "CLIPTextEncode",
                {
                    "text": ["STRING", {"multiline": True, "dynamicPrompts": True}],
                    "clip": ["CLIP"],
                },
                ["CONDITIONING"],
                category="conditioning",
                display_name="CLIP Text Encode (Prompt)",
            )
        ),
        NodeSpec(
            node_definition(
                "EmptyLatentImage",
                {
                    "width": ["INT", {"default": 512, **size}],
                    "height": ["INT", {"default": 512, **size}],
                    "batch_size": ["INT", {"default": 1, "min": 1, "max": 4096}],
                },
                ["LATENT"],
                category="latent",
                display_name="Empty Latent Image",
            )
        ),
        NodeSpec(
            node_definition(
                "VAEDecode",
                {"samples": ["LATENT"], "vae": ["VAE"]},
                ["IMAGE"],
                category="latent",
                display_name="VAE Decode",
            )
        ),
    ]


def with_models(
    config: FakeComfyConfig,
    checkpoints: list[str],
    loras: Sequence[str] = (),
    step_seconds: float = 0.0,
) -> FakeComfyConfig:
    """`config` plus the text-to-image classes and /models listings for these files."""
    clone = config.with_nodes(*txt2img_nodes(checkpoints, loras, step_seconds))
    clone.model_files = {
        **config.model_files,
        "checkpoints": sorted(checkpoints),
        "loras": sorted(loras),
    }
    return clone


def txt2img_prompt(
    checkpoint: str, text: str = "a photo of a cat", steps: int = 4, size: int = 64
) -> dict[str, Any]:
    """An API-format prompt using the txt2img classes and the recorded SaveImage."""
    return {
        "4": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": checkpoint}},
        "5": {
            "class_type": "EmptyLatentImage",
            "inputs": {"width": size, "height": size, "batch_size": 1},
        },
        "6": {"class_type": "CLIPTextEncode", "inputs": {"text": text, "clip": ["4", 1]}},
        "7": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["4", 1]}},
        "3": {
            "class_type": "KSampler",
            "inputs": {
                "seed": 42,
                "steps": steps,
                "cfg": 7.0,
                "sampler_name": "euler",
                "scheduler": "normal",
                "denoise": 1.0,
                "model": ["4", 0],
                "positive": ["6", 0],
                "negative": ["7", 0],
                "latent_image": ["5", 0],
            },
        },
        "8": {"class_type": "VAEDecode", "inputs": {"samples": ["3", 0], "vae": ["4", 2]}},
        "9": {
            "class_type": "SaveImage",
            "inputs": {"filename_prefix": "ComfyUI", "images": ["8", 0]},
        },
    }
