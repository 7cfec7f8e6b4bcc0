"""Serve one base model and its LoRA adapters over an OpenAI-compatible HTTP API (notebook 06).

- `engine`: the batching worker (one mixed-adapter generate per batch; no cross-talk between requests)
- `app`: the FastAPI app (`/health`, `/v1/models`, `/v1/chat/completions`, the web page at `/`)
- `client`: `ask()` and the `ask` CLI; `process`: start/stop the server in the background
- `composition`: a TOML file naming the base, the adapters (each with a weight 0..2 and a precision), named mixes,
  the router and the server settings; `python -m lessons_lib.serve --config assets/compositions/course.toml`
  serves exactly that (the course's default: the tiny base, json/coding/support, the keyword router, two mixes)
- `page`: the web page (streamed answers, weight sliders for a mix, a compare view, the router's choice for auto)
- `vllm`: the `vllm serve` / LoRAX commands for the same adapters, leaving out (with the reason) adapters vLLM
  cannot load (modules_to_save, DoRA, rank above 512, unsupported target modules); notes on tool calls there
"""
