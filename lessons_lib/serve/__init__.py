"""Serve one base model and its LoRA adapters over an OpenAI-compatible HTTP API (notebook 06).

- `engine`: the batching worker (one mixed-adapter generate per batch; no cross-talk between requests)
- `app`: the FastAPI app (`/health`, `/v1/models`, `/v1/chat/completions`, the web page at `/`)
- `client`: `ask()` and the `ask` CLI; `process`: start/stop the server in the background
- `vllm`: the `vllm serve` / LoRAX commands for the same adapters
"""
