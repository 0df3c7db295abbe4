"""A fake ComfyUI server for sparkplane's tests, faithful to a recorded ComfyUI 0.3.64.

Usage::

    from tests.fakes.comfyui import FakeComfyConfig, FakeComfyUI, Fault, with_models

    config = with_models(FakeComfyConfig(speed=2.0), checkpoints=["sdxl.safetensors"])
    config.faults.append(Fault("error", node_class="KSampler", message="CUDA error"))
    async with FakeComfyUI(config) as fake:
        ...  # talk to fake.url / fake.ws_url(client_id) like to a ComfyUI server
        fake.stats.prompt_bodies, fake.stats.jobs, fake.stats.uploads
        await fake.kill()      # connections reset, port closed
        await fake.restart()   # same port, empty queue/history/caches, files kept
        fake.inject(Fault("hang", node_class="SaveImage"))

Config knobs (config.py): nodes (NodeSpec per class; recorded ones by default,
synthetic.py adds CheckpointLoaderSimple/KSampler/LoraLoader/... with given model files),
speed, node_seconds, step_seconds, faults, frame_latency_s, gc_pause_s, gc_interval_s,
system_stats, model_bytes (memory.py), base_dir, host, port. Fixtures for pytest:
pytest_plugin.py. Recorded fixtures loader: recorded.py.

Standalone: ``python -m tests.fakes.comfyui --port 8188 [--checkpoint x.safetensors]``.

What it reproduces (checked against the recordings in shared/fixtures/comfyui by
tests/fakes/comfyui_conformance/):

- Every recorded route, also under /api: /system_stats, /features, /object_info[/{class}]
  (unknown class: 200 {}), GET/POST /prompt, GET/POST /queue, POST /interrupt, POST /free,
  GET /history[/{id}] (max_items, offset), POST /history, POST /upload/image, GET /view.
  Status codes, JSON shapes and empty bodies as recorded; a body that is not JSON gives
  aiohttp's text/plain 500 ("Server got itself in trouble"), as in ComfyUI.
- Prompt validation computed from the node definitions, with ComfyUI's error bodies
  (invalid_prompt, prompt_no_outputs, no_prompt, prompt_outputs_failed_validation;
  required_input_missing, invalid_input_type, value_smaller_than_min /
  value_bigger_than_max, value_not_in_list, return_type_mismatch, bad_linked_input,
  exception_during_inner_validation, custom_validation_failed for LoadImage), partial
  acceptance, client-chosen prompt_id, `front` (negative numbers), `number`.
- Queue semantics: heap-ordered pending list, delete/clear on pending only, status
  broadcasts on every queue change, queue_remaining = pending + running.
- Execution: dependency order from the outputs (ComfyUI's ExecutionList choice rules),
  input-signature caching across consecutive prompts (execution_cached, cached output
  nodes replay `executed`), IS_CHANGED for LoadImage (file hash) and
  SaveImageWebsocket (always re-runs), the websocket sequence (status x2,
  execution_start, execution_cached, per node progress_state / executing / progress /
  previews / executed / progress_state, then execution_success | execution_error |
  execution_interrupted, status, executing null), history entries with status messages
  and meta, targeted and global interrupts (taking effect when a node starts or at a
  progress step), /free free_memory clearing the cache.
- Websocket routing: per-clientId delivery, newest socket per id only, prompts without
  client_id send only progress/progress_state/previews (to all sockets), `sid` only in
  the first status, `executing` replay without prompt_id on reconnect, frames queued
  before a reconnect reach the new socket, feature_flags answered only to a client's
  first message, type-1 previews (after `progress`) vs type-4 previews with metadata
  (before `progress`) after negotiation.
- Files: SaveImage writes real PNGs (tEXt "prompt" and extra_pnginfo keys) named
  <prefix>_<00001>_.png continuing from files on disk; PreviewImage writes
  ComfyUI_temp_xxxxx_00001_.png into temp/; LoadImage lists top-level images of input/;
  uploads dedupe same bytes and rename different bytes to "name (1).ext"; /view with
  Content-Type from the extension, Content-Disposition, ETag, preview=jpeg re-encoding.
- The Origin check (403 with an empty body when Host is loopback and Origin differs),
  the /ws handshake included.
- Timing and failures (config.py): per-class work and step times, a speed factor,
  frame latency, the GC pause after the first prompt and after >10 s, and faults:
  execution errors (generic or OOM), hangs, kill, freeze, 5xx answers; kill/restart.

What it does not reproduce:

- Real image processing: images are solid colours or decoded PNGs; ImageScale is nearest
  neighbour; JPEG/GIF/WEBP inputs load as grey frames of their header size; webp
  previews need Pillow. Output bytes, sizes and hashes differ from ComfyUI's.
- Tracebacks carry the recorded frames (file, line, function) under the fake's folder,
  with a placeholder source line; current_inputs show placeholder tensor strings.
- List inputs/outputs (INPUT_IS_LIST / OUTPUT_IS_LIST), lazy inputs, subgraph
  expansion, async nodes, dependency-cycle detection beyond validation, V3 nodes.
- Routes not recorded are absent (/upload/mask, /userdata, /settings, /internal/...),
  except /models, /models/{folder} and /embeddings, which are shaped from ComfyUI's
  source, not recordings. No frontend is served.
- The Origin check resolves only IP literals and "localhost" names (no DNS lookup).
- GC model: frames already delivered before the pause starts (often the `status` queued
  by the POST itself) leave on time; on the recorded first prompt even that one was late.
  A frozen fake still answers websocket pings (aiohttp's autoping).

Behaviour taken from ComfyUI's source rather than from recordings (kept because a
client can meet it): closing an older duplicate socket unregisters the clientId for the
newer one too; deleting the last pending prompt broadcasts `status` twice; an
interrupted prompt without client_id tells every socket; /free acts when the worker is
next free; gpu_system_stats(), the synthetic node classes and the model memory (files a
job loaded take `model_bytes` off /system_stats until /free unloads them) are shaped, not
recorded.
"""

from tests.fakes.comfyui.config import FakeComfyConfig, Fault, NodeSpec, gpu_system_stats
from tests.fakes.comfyui.server import FakeComfyUI
from tests.fakes.comfyui.synthetic import custom_node, txt2img_prompt, with_models

__all__ = [
    "FakeComfyConfig",
    "FakeComfyUI",
    "Fault",
    "NodeSpec",
    "custom_node",
    "gpu_system_stats",
    "txt2img_prompt",
    "with_models",
]
