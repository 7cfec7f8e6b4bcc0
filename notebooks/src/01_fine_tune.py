# %% [markdown]
# # 01 — Fine-tune a LoRA adapter with TRL, keep it safe, prove it learned
#
# A base model knows a lot but does not do *our* job: it does not answer "extract name and city as JSON"
# with a clean JSON object. In this notebook we teach it, without touching its weights: we train a small
# **LoRA adapter** with TRL's `SFTTrainer`, watch the loss fall, and then *measure* that the adapter beats
# the base on held-out prompts it has never seen. We save only the adapter (kilobytes to megabytes, not
# gigabytes), with a manifest saying what it is, and we make training survive a lost Colab runtime:
# checkpoints every few steps, and rerunning the same cell resumes where it stopped.
#
# On a CPU the notebook uses the course's tiny 2M-parameter model, so everything runs in about three
# minutes. On a Colab T4 (profile `t4`) or with 7B (profile `7b`) the same cells train a real chat model
# in 4-bit (QLoRA).

# %% [markdown]
# ## Learning objectives
# - Explain what LoRA trains (W₀ + B·A·α/r), count its trainable parameters and its size on disk.
# - Turn instruction/response pairs into chat-formatted training rows and see which tokens carry the loss.
# - Configure `LoraConfig` + `SFTConfig` + `SFTTrainer` (every knob), and the 4-bit QLoRA path on a GPU.
# - Compare the base and the adapter on the same held-out prompts with a domain metric.
# - Save the adapter only, with a manifest, to a local folder, Google Drive or the Hugging Face Hub.
# - Survive a disconnect: checkpoint every N steps, rerun the same cell, resume from the newest checkpoint.

# %% tags=["parameters"]
PROFILE = None  # "tiny" | "t4" | "7b"; None = automatic

# %% [markdown]
# Options for where your work goes. The defaults keep everything in a local folder.

# %%
USE_DRIVE = False  # Colab: keep checkpoints and adapters on Google Drive, so a disconnect loses nothing
PUSH_TO_HUB = False  # also upload the json adapter to the Hugging Face Hub (needs a token with write access)
HUB_NAMESPACE = None  # your Hub user or organisation; None = the user the token belongs to
RUN_NAME = "json-1"  # the main run's checkpoints live under this name: change it to start a fresh run

# %%
from lessons_lib.lesson import setup_lesson

lesson = setup_lesson("01", profile=PROFILE, use_drive=USE_DRIVE)

# %% [markdown]
# ## 1. Load the base model — in 4-bit on a GPU (QLoRA)
#
# On a GPU profile we load the base **quantized to 4 bits** (NF4) with `BitsAndBytesConfig`: a 7B model
# then takes ~4 GB instead of ~14 GB, and we train LoRA on top of it — that is **QLoRA**. The matrix
# products still run in 16-bit (`bnb_4bit_compute_dtype`). A T4 (compute capability 7.5) has no native
# bf16, so we use fp16 there; bf16 only on compute capability ≥ 8 (A100, L4, H100). Do not trust
# `torch.cuda.is_bf16_supported()`: it says True on a T4 because it *emulates* bf16.
#
# Without a GPU, or without `bitsandbytes`, the cell says so and falls back to the unquantized model
# (plain LoRA) instead of failing. The tiny profile always trains in fp32 on the CPU.

# %%
import importlib.util
import warnings
from pathlib import Path

import datasets
import torch
from transformers import AutoModelForCausalLM, BitsAndBytesConfig

from lessons_lib.models import load_tokenizer, model_source

datasets.disable_progress_bars()  # keep the output for the trainer's own progress bar
# transformers 5.23 renamed gradient_checkpointing to activation_checkpointing; Colab's older release only knows
# the old name, so we keep it and silence the rename notice.
warnings.filterwarnings("ignore", message=".*gradient_checkpointing.*deprecated", category=FutureWarning)
profile = lesson.profile
on_gpu = torch.cuda.is_available()
bnb_config = None
if not profile.load_in_4bit:
    print(f"Profile {profile.name!r}: no quantization (4-bit pays off from ~1B parameters up).")
elif not on_gpu:
    print("No CUDA GPU: 4-bit QLoRA needs one. Loading the model unquantized and training plain LoRA instead.")
elif importlib.util.find_spec("bitsandbytes") is None:
    print("bitsandbytes is not installed (`pip install bitsandbytes`): loading the model unquantized instead.")
else:
    major, minor = torch.cuda.get_device_capability()
    compute_dtype = torch.bfloat16 if major >= 8 else torch.float16
    bnb_config = BitsAndBytesConfig(
        load_in_4bit=True,  # store the frozen base weights in 4 bits
        bnb_4bit_quant_type="nf4",  # NormalFloat4: quantization levels fitted to normally distributed weights
        bnb_4bit_use_double_quant=True,  # also quantize the quantization constants (~0.4 bit/param saved)
        bnb_4bit_compute_dtype=compute_dtype,  # fp16 on a T4 (7.5), bf16 only on compute capability >= 8
    )
    print(f"QLoRA: 4-bit NF4 weights, {compute_dtype} compute (compute capability {major}.{minor}).")


def fresh_base():
    """A freshly loaded base model (get_peft_model changes a base in place, so each run starts from here)."""
    kwargs = {"dtype": profile.torch_dtype()}
    if on_gpu:
        kwargs["device_map"] = "auto"
    if bnb_config is not None:
        kwargs["quantization_config"] = bnb_config
    try:
        return AutoModelForCausalLM.from_pretrained(model_source(profile), **kwargs)
    except ImportError as err:  # a broken bitsandbytes install: fall back rather than fail
        print(f"4-bit loading failed ({err}); loading the model unquantized instead.")
        kwargs.pop("quantization_config", None)
        return AutoModelForCausalLM.from_pretrained(model_source(profile), **kwargs)


tok = load_tokenizer(profile)
base = fresh_base()
print(f"{profile.model_id}: {sum(p.numel() for p in base.parameters()):,} parameters, "
      f"{base.get_memory_footprint() / 2**20:.1f} MiB in memory")

# %% [markdown]
# ## 2. Before training: how does the base do on our task?
#
# Our first adapter's job is **JSON extraction**: "Extract name and city as JSON: …" → `{"name": …, "city":
# …}`. `lessons_lib.evaluate` scores answers to **held-out** prompts (names, cities and phrasings that
# never appear in training): *valid* = it parses as a JSON object; *correct* = exactly the expected keys
# with the values copied from the prompt. We measure the untouched base now, on the same prompts we will
# give the adapter later.

# %%
from lessons_lib.evaluate import evaluate_model, format_table, heldout

N_EVAL = 16 if profile.name == "tiny" else profile.eval_examples
MAX_NEW = profile.max_new_tokens
before, before_outputs = evaluate_model(base, tok, "json", N_EVAL, max_new_tokens=MAX_NEW)
probe = heldout("json", N_EVAL)
for example, answer in list(zip(probe, before_outputs))[:2]:
    print(f"PROMPT: {example.prompt}\nBASE  : {answer[:150]!r}\n")
print(format_table([before.row("base")]))

# %% [markdown]
# ## 3. Why LoRA: train a tiny correction, not the model
#
# Full fine-tuning updates every weight matrix W₀ (d_out × d_in). LoRA freezes W₀ and learns a
# **low-rank correction** ΔW = B·A with A (r × d_in) and B (d_out × r), r ≪ d, scaled by α/r:
#
# ```
#   x ──►[ W₀  d_out×d_in, frozen ]───────────────────────────►(+)──► h = W₀·x + (α/r)·B·A·x
#   │                                                            ▲
#   └──►[ A  r×d_in, random init ]──►[ B  d_out×r, zeros ]──►×α/r┘   (only A and B are trained)
# ```
#
# B starts at zero, so at step 0 the adapter changes nothing; training moves only A and B. Per adapted
# layer that is r·(d_in + d_out) numbers instead of d_in·d_out. The knobs of `LoraConfig`:
#
# | knob | meaning | here |
# |---|---|---|
# | `r` | rank of the correction: capacity (and size) of the adapter | 8 (tiny), 16 (GPU) |
# | `lora_alpha` | scale α; the update is multiplied by α/r, so α = 2r gives scale 2 | 2·r |
# | `lora_dropout` | dropout on the adapter's input, a little regularisation | 0.05 |
# | `target_modules` | which layers get an adapter; `"all-linear"` = every linear layer but the output head | all-linear |
# | `bias` | train biases too? `"none"` keeps the adapter pure LoRA | none |
# | `task_type` | `CAUSAL_LM`: next-token prediction, so PEFT wraps the model correctly | CAUSAL_LM |

# %%
from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

lora = LoraConfig(
    r=profile.lora_r,
    lora_alpha=profile.lora_alpha,
    lora_dropout=0.05,
    target_modules="all-linear",
    bias="none",
    task_type="CAUSAL_LM",
)
if bnb_config is not None:
    # QLoRA: cast norms to fp32, enable input grads and gradient checkpointing on the 4-bit base.
    base = prepare_model_for_kbit_training(base, use_gradient_checkpointing=profile.gradient_checkpointing)
model = get_peft_model(base, lora)  # injects A and B into every linear layer (in place)
model.print_trainable_parameters()

# %% [markdown]
# Check the count by hand: every adapted linear layer adds r·(d_in + d_out) parameters.

# %%
from peft.tuners.lora import LoraLayer

lora_layers = {name: m for name, m in model.named_modules() if isinstance(m, LoraLayer)}
by_hand = sum(lora.r * (m.in_features + m.out_features) for m in lora_layers.values())
trainable, total = model.get_nb_trainable_parameters()
name, layer = next(iter(lora_layers.items()))
print(f"{len(lora_layers)} adapted layers, e.g. {name}: {layer.in_features}->{layer.out_features}, "
      f"{layer.in_features * layer.out_features:,} frozen vs {lora.r * (layer.in_features + layer.out_features):,} trainable")
print(f"trainable {trainable:,} of {total:,} = {100 * trainable / total:.2f}%  (by hand: {by_hand:,})")
assert by_hand == trainable, "LoRA trains exactly r*(d_in+d_out) numbers per adapted layer"

# %% [markdown]
# ## 4. Data: instruction/response pairs → chat rows
#
# Each training example is an instruction and the answer we want. TRL's **prompt–completion** format
# keeps them apart as chat messages: `prompt` = the user turn(s), `completion` = the assistant turn.
# The tokenizer's chat template turns the messages into the exact text the model sees. On the tiny
# profile the rows come from the course's synthetic generator (English and Russian).

# %%
import json

from lessons_lib.data import sft_rows

STEPS = 30 if profile.name == "tiny" else profile.train_steps
ROWS = STEPS * profile.batch_size * profile.grad_accum  # every row is seen about once
rows = sft_rows("json", ROWS)
print(json.dumps(rows[0], ensure_ascii=False, indent=1))
print("\nWith the chat template applied:\n")
print(tok.apply_chat_template(rows[0]["prompt"] + rows[0]["completion"], tokenize=False))

# %% [markdown]
# On GPU profiles we also mix in general chat from **FineTome-100k** (ShareGPT format:
# `conversations: [{from: human|gpt, value}]`), so the adapter keeps chatting normally outside its task.
# `lessons_lib.sharegpt` converts ShareGPT rows to messages and reports malformed rows (count + the first
# one) instead of silently dropping them. On the tiny profile (offline) we convert a small local file of
# the same shape, with one broken row on purpose.

# %%
from lessons_lib.sharegpt import load_finetome
from lessons_lib.train import fit_to_length

general_rows = []
if profile.name == "tiny":
    sample = lesson.work_dir / "finetome_sample.jsonl"
    sample.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in [
        {"conversations": [{"from": "human", "value": "What is a LoRA adapter?"},
                           {"from": "gpt", "value": "A small set of extra weights that adapts a frozen model."}]},
        {"conversations": [{"from": "human", "value": "Say hi in Russian."}, {"from": "gpt", "value": "Привет!"}]},
        {"conversations": [{"from": "human", "value": "This row has no answer."}]},
    ]), encoding="utf-8")
    converted, report = load_finetome(3, path=sample)
    print(report.summary())
    print(converted[0])
else:
    try:
        finetome, report = load_finetome(ROWS // 5)  # ~20% general chat next to the task data
        general_rows, dropped = fit_to_length(finetome, tok, profile.max_length)
        print(f"FineTome: {report.summary()}; {dropped} rows dropped as longer than max_length")
    except Exception as err:  # no network or no datasets access: train on the task data alone
        print(f"Could not load FineTome-100k ({type(err).__name__}: {err}); training on the task data only.")
train_rows = rows + general_rows

# %% [markdown]
# ## 5. The trainer: `SFTConfig` + `SFTTrainer`
#
# Every knob of the run, written out. The values come from the profile, so the same cell is right for a
# CPU, a T4 and a 7B model:
#
# - **steps / batch**: `max_steps` optimizer steps of `per_device_train_batch_size × gradient_accumulation_steps`
#   rows each (accumulation = a bigger batch without the memory). We count steps, not epochs, so runs
#   are comparable across data sizes.
# - **learning rate**: LoRA tolerates much higher rates than full fine-tuning (2e-4 on 1B–7B; 2e-3 on the
#   tiny model). Cosine decay after a short warm-up.
# - **max_length**: longer rows are truncated; **packing** (several rows per sequence) is off so each
#   row keeps its own loss mask.
# - **completion_only_loss**: the loss covers the answer only, not the prompt (see the next cell).
# - **precision**: fp32 on a CPU; fp16 mixed precision on a T4; bf16 only on compute capability ≥ 8.
#   **gradient checkpointing** (GPU profiles) recomputes activations to save memory (~20% slower).
# - **checkpoints**: every `save_steps` the adapter, optimizer and step counter go to `output_dir` (on
#   Drive if `USE_DRIVE`); `save_total_limit` keeps only the newest few.

# %%
from datasets import Dataset
from trl import SFTConfig, SFTTrainer

from lessons_lib.train import keep_adapter_fp32, sft_config

RUN_DIR = lesson.work_dir / "runs" / RUN_NAME
dtype = profile.torch_dtype()
args = SFTConfig(
    output_dir=str(RUN_DIR / "checkpoints"),  # checkpoints (Drive if USE_DRIVE): what a rerun resumes from
    max_steps=STEPS,  # optimizer steps in total
    per_device_train_batch_size=profile.batch_size,  # rows per forward/backward pass
    gradient_accumulation_steps=profile.grad_accum,  # passes per optimizer step
    learning_rate=profile.learning_rate,
    lr_scheduler_type="cosine",
    warmup_steps=max(1, STEPS // 20),
    max_length=profile.max_length,  # tokens per row (prompt + answer)
    packing=False,  # one row per sequence, each with its own loss mask
    completion_only_loss=True,  # loss on the assistant's answer only
    gradient_checkpointing=profile.gradient_checkpointing and on_gpu,
    fp16=on_gpu and dtype == torch.float16,  # T4
    bf16=on_gpu and dtype == torch.bfloat16,  # compute capability >= 8 only
    use_cpu=not on_gpu,
    logging_steps=max(1, STEPS // 20),  # how often the loss is recorded (and drawn below)
    save_strategy="steps",
    save_steps=max(5, STEPS // 4),  # checkpoint every N steps: the most a disconnect can cost
    save_total_limit=2,  # keep only the newest 2 checkpoints
    report_to="none",
    seed=0,
)
library_args = sft_config(profile, RUN_DIR / "checkpoints", STEPS)  # what lessons_lib.train uses below
for knob in ("max_steps", "learning_rate", "per_device_train_batch_size", "max_length", "fp16", "bf16"):
    assert getattr(args, knob) == getattr(library_args, knob), knob
# Build the trainer after the last SFTConfig: creating a config resets the accelerator state of earlier trainers.
trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(train_rows), processing_class=tok)
if args.fp16:
    keep_adapter_fp32(trainer.model)  # fp16 AMP cannot unscale fp16/bf16 gradients: LoRA weights stay fp32

# %% [markdown]
# **Which tokens carry the loss?** The trainer has tokenized every row with the chat template and built
# `labels`: a copy of `input_ids` where the prompt is replaced by -100 (PyTorch's "ignore" index). So the
# model is graded only on the answer — including the closing `<|end|>`, which teaches it to stop.

# %%
example = trainer.train_dataset[0]
ids, labels = example["input_ids"], example["labels"]
prompt_ids = [i for i, label in zip(ids, labels) if label == -100]
answer_ids = [i for i, label in zip(ids, labels) if label != -100]
print(f"{len(ids)} tokens: {len(prompt_ids)} masked (label -100), {len(answer_ids)} carry the loss\n")
print("no loss :", repr(tok.decode(prompt_ids)))
print("loss    :", repr(tok.decode(answer_ids)))
print("\nlabels  :", labels[:len(prompt_ids) + 6], "...")
batch = trainer.data_collator([trainer.train_dataset[0], trainer.train_dataset[1]])
print("a padded batch:", {k: tuple(v.shape) for k, v in batch.items()})
assert tok.decode(answer_ids, skip_special_tokens=True).strip() == rows[0]["completion"][0]["content"]
assert tok.eos_token_id in answer_ids, "the end-of-turn token is trained, so the model learns to stop"

# %% [markdown]
# ### Train (rerun this cell after a disconnect: it resumes)
#
# `last_checkpoint` finds the newest `checkpoint-N` in the output folder; `resume_from_checkpoint`
# restores the adapter weights, the optimizer, the scheduler and the step counter from it. On a fresh run
# there is none and training starts at step 0. The bar below is the trainer's live progress bar.

# %%
import time

from lessons_lib.train import last_checkpoint

resume_from = last_checkpoint(args.output_dir)
print("starting at step 0" if resume_from is None else f"resuming from {resume_from}")
start = time.time()
trainer.train(resume_from_checkpoint=resume_from)
train_seconds = time.time() - start
print(f"{trainer.state.global_step} steps, {train_seconds:.0f}s in this call")

# %%
import matplotlib.pyplot as plt

history = [h for h in trainer.state.log_history if "loss" in h]
plt.figure(figsize=(6, 3))
plt.plot([h["step"] for h in history], [h["loss"] for h in history], marker="o")
plt.xlabel("step")
plt.ylabel("training loss (answer tokens)")
plt.title(f"LoRA on {profile.name}: json adapter")
plt.grid(alpha=0.3)
plt.show()

# %% [markdown]
# ## 6. After training: the same held-out prompts, base vs adapter

# %%
model.eval()
after, after_outputs = evaluate_model(model, tok, "json", N_EVAL, max_new_tokens=MAX_NEW)
for example, old, new in list(zip(probe, before_outputs, after_outputs))[:3]:
    print(f"PROMPT : {example.prompt}\nBASE   : {old[:120]!r}\nADAPTER: {new[:120]!r}\n")
print(format_table([before.row("base"), after.row("base + json adapter")]))

# %% [markdown]
# Now that B ≠ 0, check the formula on one adapted layer: its output equals W₀·x + (α/r)·B·A·x.

# %%
if bnb_config is None and dtype == torch.float32:  # a 4-bit W₀ would first have to be dequantized
    x = torch.randn(3, layer.in_features, device=layer.weight.device)
    A, B = layer.lora_A["default"].weight, layer.lora_B["default"].weight
    with torch.no_grad():
        by_formula = x @ layer.weight.T + (lora.lora_alpha / lora.r) * (x @ A.T @ B.T)
        assert torch.allclose(layer(x), by_formula, atol=1e-5)
    print(f"{name}: |B| = {B.norm():.3f}, scale α/r = {lora.lora_alpha / lora.r}; output == W0·x + (α/r)·B·A·x ✓")
else:
    print("Skipped on a 4-bit or half-precision base: W₀ is stored quantized or rounded there.")

# %% [markdown]
# ## 7. Save the adapter (only), with a manifest
#
# `save_pretrained` on a `PeftModel` writes only the adapter: `adapter_config.json` +
# `adapter_model.safetensors`. `lessons_lib.storage` adds `manifest.json` (base model id and shape
# fingerprint, profile, data, steps, metrics, library versions) and saves to a **local folder**, **Google
# Drive** (on Colab, with `USE_DRIVE`) or the **Hugging Face Hub**. It never replaces an existing adapter
# unless you pass `overwrite=True`. On GPU profiles this is the folder notebooks 02–06 load from.

# %%
from lessons_lib import storage
from lessons_lib.manifest import Manifest

if lesson.drive_dir is not None:
    store = storage.drive_store(lesson.work_dir / "adapters")
else:
    store = storage.local_store(lesson.work_dir / "adapters")
manifest = Manifest.for_model("json", model, profile.name, domain="json", steps=trainer.state.global_step,
                              data={"source": "lessons_lib.data", "rows": len(rows), "general_rows": len(general_rows)},
                              metrics={"heldout_valid": after.valid_rate, "heldout_correct": after.correct_rate,
                                       "heldout_n": after.n})
# overwrite=True: an earlier run of this notebook may have saved "json" here already; we replace our own.
saved_at = storage.save_adapter(model, "json", store, manifest, overwrite=True)
files = {p.name: p.stat().st_size for p in sorted(Path(saved_at).iterdir())}
adapter_bytes = files["adapter_model.safetensors"]
base_bytes = total * torch.finfo(dtype).bits // 8 if bnb_config is None else total // 2  # 4-bit: 0.5 byte/param
print(f"saved to {saved_at}:")
for file_name, size in files.items():
    print(f"  {file_name:28s} {size / 1024:8.1f} KiB")
print(f"adapter {adapter_bytes / 2**20:.2f} MiB vs base weights ≈ {base_bytes / 2**20:.1f} MiB "
      f"→ the adapter is {100 * adapter_bytes / base_bytes:.1f}% of the base")

# %%
snapshot = {p.name: p.read_bytes() for p in Path(saved_at).iterdir()}
try:
    storage.save_adapter(model, "json", store, manifest)  # no overwrite=True
except FileExistsError as err:
    print("Refused:", err)
assert {p.name: p.read_bytes() for p in Path(saved_at).iterdir()} == snapshot, "nothing was overwritten"

# %% [markdown]
# **Reload and compare.** A fresh base + the saved folder must answer exactly like the model we trained.

# %%
from peft import PeftModel

from lessons_lib.models import chat_text, generate

reloaded = PeftModel.from_pretrained(fresh_base(), saved_at).eval()
texts = [chat_text(tok, example.prompt) for example in probe[:8]]
batch = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
with torch.no_grad():
    logit_diff = (model(**batch).logits - reloaded(**batch).logits).abs().max().item()
trained_answers = generate(model, tok, [example.prompt for example in probe[:3]], MAX_NEW)
reloaded_answers = generate(reloaded, tok, [example.prompt for example in probe[:3]], MAX_NEW)
print(f"largest logit difference over 8 prompts: {logit_diff:.1e}\nreloaded answers: {reloaded_answers}")
assert logit_diff <= (1e-5 if dtype == torch.float32 else 1e-2), logit_diff
assert reloaded_answers == trained_answers, "the saved adapter reloads with identical outputs"

# %% [markdown]
# **To the Hub (opt-in).** Set `PUSH_TO_HUB = True` at the top. The token comes from
# `huggingface_hub.get_token()`, which reads Colab's `HF_TOKEN` secret (key icon in the left bar) or a saved
# login; without one, `login()` asks for it. Adapters go to a **private** repo `<you>/<name>`.

# %%
if PUSH_TO_HUB:
    from huggingface_hub import get_token, login

    if get_token() is None:
        login()  # interactive: paste a token with write access
    hub = storage.hub_store(HUB_NAMESPACE)
    repo_id = storage.save_adapter(model, f"lora-lab-{profile.name}-json", hub, manifest, overwrite=True)
    print(f"pushed: https://huggingface.co/{repo_id}")
else:
    print("PUSH_TO_HUB is False: the adapter stays in", store)

# %% [markdown]
# ## 8. Three adapters in one loop — and a disconnect drill
#
# The later notebooks need three adapters: `json`, `coding`, `support`. One loop trains them with
# `lessons_lib.train.train_domain` — the same `LoraConfig`/`SFTConfig`/`SFTTrainer` code as above, packaged
# with what a long run needs: checkpoints every `save_steps`, only the last `keep_checkpoints` kept, and
# **resume from the newest checkpoint** when the same call runs again — including for *named* adapters,
# whose checkpoint weights live in `checkpoint-N/<name>/` (transformers #28531: the trainer can silently
# restart those from scratch; `train_adapter` checks and restores them). The loop skips adapters that are
# already saved, so after a disconnect you simply rerun it.
#
# On GPU profiles the loop trains each adapter fully (`profile.train_steps`) and saves them where
# notebooks 02–06 look (`lessons_lib.adapters.adapter_dir`). On the tiny profile it is a short demo run
# (6 steps per adapter, into a scratch folder under `lesson.work_dir`, not evaluated: so few steps teach
# little). The shipped `assets/adapters`, which notebooks 02–06 use on the tiny profile, were made by the
# same `train_domain` function with the profile's full 120 steps — their scores are in the table below.
#
# The drill: a callback raises after step k of the `coding` adapter, as if Colab had dropped the runtime.

# %%
import shutil

from lessons_lib.adapters import COURSE_ADAPTERS, adapter_dir
from lessons_lib.train import SimulatedDisconnect, checkpoint_step, disconnect_after, train_domain

if profile.name == "tiny":
    LOOP_STEPS, SAVE_EVERY, N_LOOP_EVAL = 6, 2, 0  # a few steps teach little: we compare the shipped adapters
    demo = lesson.work_dir / "loop-demo"
    shutil.rmtree(demo, ignore_errors=True)  # the drill starts from scratch each time the notebook runs
    loop_store, loop_dir = storage.local_store(demo / "adapters"), demo / "training"
else:
    LOOP_STEPS, SAVE_EVERY, N_LOOP_EVAL = profile.train_steps, max(10, profile.train_steps // 8), N_EVAL
    loop_store, loop_dir = store, lesson.work_dir / "training"
disconnect = disconnect_after(LOOP_STEPS // 2 + 1)  # fires once, between two checkpoints


def train_course_adapters():
    """Train and save every course adapter the store lacks; safe to rerun after an interruption."""
    done = {}
    for domain in COURSE_ADAPTERS:
        if domain in storage.list_adapters(loop_store):
            print(f"{domain}: already saved in {loop_store}, skipping")
            continue
        result = train_domain(domain, profile, loop_dir / domain, n_rows=LOOP_STEPS * profile.batch_size * profile.grad_accum,
                              max_steps=LOOP_STEPS, save_steps=SAVE_EVERY, keep_checkpoints=2, adapter_name=domain,
                              callbacks=[disconnect] if domain == "coding" else [], extra_rows=general_rows)
        metrics = {}
        if N_LOOP_EVAL:
            adapter = PeftModel.from_pretrained(fresh_base(), result.adapter_dir).eval()
            report, _ = evaluate_model(adapter, tok, domain, N_LOOP_EVAL, max_new_tokens=MAX_NEW)
            metrics = {"heldout_valid": report.valid_rate, "heldout_correct": report.correct_rate, "heldout_n": report.n}
        # `model` (our json PeftModel) sits on the same base, so it describes the base in the manifest.
        storage.save_adapter(result.adapter_dir, domain, loop_store, Manifest.for_model(
            domain, model, profile.name, domain=domain, steps=result.steps, metrics=metrics,
            data={"source": "lessons_lib.data", "general_rows": len(general_rows)}))
        done[domain] = result
    return done


try:
    train_course_adapters()
except SimulatedDisconnect as err:  # on Colab the whole runtime would be gone; here only this call is
    print(f"\n*** {err}")
print("checkpoints left behind:", sorted(p.name for p in (loop_dir / "coding" / "checkpoints").glob("checkpoint-*"))
      if (loop_dir / "coding" / "checkpoints").is_dir() else "none")

# %% [markdown]
# The runtime "came back". Rerun **the same call**: `json` is already saved and skipped, `coding` resumes
# from its newest checkpoint (not from step 0), `support` trains normally.

# %%
second_try = train_course_adapters()
if disconnect.fired:
    resumed = second_try["coding"]
    print(f"coding resumed from {resumed.resumed_from} and ran {resumed.steps_run} more steps to {resumed.steps}")
    assert checkpoint_step(resumed.resumed_from) > 0, "resumed from a checkpoint, not from step 0"
    assert resumed.steps == LOOP_STEPS and resumed.steps_run == LOOP_STEPS - checkpoint_step(resumed.resumed_from)
assert disconnect.fired or profile.name != "tiny"
assert storage.list_adapters(loop_store) == sorted(COURSE_ADAPTERS)

# %%
rows_table = []
for domain in COURSE_ADAPTERS:
    m = storage.read_manifest(domain, loop_store)
    rows_table.append({"adapter": domain, "source": f"this run ({m.steps} steps)",
                       "valid": round(m.metrics["heldout_valid"], 2) if m.metrics else "-",
                       "correct": round(m.metrics["heldout_correct"], 2) if m.metrics else "-",
                       "n": m.metrics.get("heldout_n", "-")})
    if profile.name == "tiny":
        shipped = Manifest.load(adapter_dir(domain, profile))
        rows_table.append({"adapter": domain, "source": f"shipped ({shipped.steps} steps)",
                           "valid": round(shipped.metrics["heldout_valid"], 2),
                           "correct": round(shipped.metrics["heldout_correct"], 2), "n": shipped.metrics["heldout_n"]})
    else:
        assert adapter_dir(domain, profile, lesson.work_dir) == loop_store.folder / domain  # where 02–06 look
print(format_table(rows_table))

# %% [markdown]
# ## 9. What the same training costs on real hardware (estimates)
#
# The tiny run above is *measured* on this machine. For the GPU profiles we only **estimate**, from the
# usual rule of thumb: training costs ≈ 6 × parameters × tokens FLOPs (×4/3 with gradient checkpointing,
# which recomputes the forward pass), divided by an *assumed* sustained throughput. These are not
# measurements: run the notebook with `PROFILE = "t4"` on Colab to get yours.

# %%
chars_per_row = sum(len(r["prompt"][0]["content"]) + len(r["completion"][0]["content"]) for r in rows) / len(rows)
task_tokens = chars_per_row / 3.5 + 12  # assumption: ~3.5 characters per token with a 32k vocabulary, + chat markup
tokens_per_row = 0.8 * task_tokens + 0.2 * 400  # assumption: 20% FineTome chats of ~400 tokens after truncation
ESTIMATES = [  # (setup, parameters, steps, rows per step, ASSUMED sustained FLOP/s: 4-bit dequantization and
    # short sequences keep utilisation far below the chips' peaks of 65 (T4 fp16) and 312 (A100 bf16) TFLOP/s)
    ("t4: TinyLlama-1.1B QLoRA on a T4", 1.1e9, 200, 16, 5e12),
    ("7b: Mistral-7B QLoRA on a T4", 7.2e9, 300, 16, 8e12),
    ("7b: Mistral-7B QLoRA on an A100", 7.2e9, 300, 16, 50e12),
]
print(f"assumed {tokens_per_row:.0f} tokens per row")
print(f"measured here ({profile.name}): {trainer.state.global_step} steps in {train_seconds:.0f}s "
      f"(this call; a resumed run counts only its own steps)")
for setup, params, steps, rows_per_step, flops in ESTIMATES:
    seconds = 6 * params * tokens_per_row * rows_per_step * steps * 4 / 3 / flops
    print(f"ESTIMATE {setup:34s}: {steps} steps ≈ {seconds / 60:5.1f} min per adapter, "
          f"×3 adapters ≈ {3 * seconds / 60:5.0f} min")

# %% [markdown]
# Memory, also estimated: a 4-bit 7B base is ~4 GB, plus LoRA weights, optimizer state (~3 × adapter
# size) and activations — it fits a T4's ~15 GB only with gradient checkpointing and batch ≤ 2
# (hence `gradient_accumulation_steps=8` in the `7b` profile). Free Colab has ~12.7 GB of system RAM:
# prefer checkpoints stored as safetensors, which load shard by shard.

# %% [markdown]
# ## 10. Self-check

# %%
print(format_table([before.row("base"), after.row("json adapter")]))
assert after.correct_rate > before.correct_rate, "the adapter beats the base on its domain metric"
if profile.name == "tiny":  # the tiny base scores 0.00 here; a short run must get well clear of it
    assert after.valid_rate >= 0.8 and after.correct_rate >= 0.5, (before, after)
assert trainer.state.global_step == STEPS, "the main run finished its planned steps"
assert len(list(Path(args.output_dir).glob("checkpoint-*"))) <= args.save_total_limit, "only the newest checkpoints kept"
assert Manifest.load(saved_at).metrics["heldout_correct"] == after.correct_rate

# %% [markdown]
# ## Recap
# - LoRA freezes W₀ and trains B·A (scaled by α/r): ~5% of the parameters of the tiny model (about 1% of a
#   1B model and well under 1% of a 7B one at r=16), and an adapter file that is a small fraction of the base.
# - Prompt–completion rows + the chat template; the loss covers the answer tokens only (labels -100 on the
#   prompt), including the end-of-turn token.
# - `LoraConfig` + `SFTConfig` + `SFTTrainer`; on a GPU, QLoRA = 4-bit NF4 base (`BitsAndBytesConfig`,
#   fp16 compute on a T4) + `prepare_model_for_kbit_training` + gradient checkpointing.
# - Measure on held-out prompts: the adapter went from the base's score to a clearly better one.
# - Save the adapter only, with a manifest; refuse to overwrite unless asked; reload gives identical outputs.
# - Checkpoint every N steps, keep the last K, and rerun the same call to resume after a disconnect.

# %% [markdown]
# ## Exercises
# 1. Halve and double `r` (keep `lora_alpha = 2·r`). How do the trainable count, the adapter size and the
#    held-out score change? (Change `RUN_NAME` too, or the run resumes the old checkpoint — and refuses.)
# 2. Set `completion_only_loss=False` and retrain. Does the json score change? Why might training on the
#    prompt hurt when prompts are long and answers short?
# 3. Move the disconnect to a step that is a multiple of `SAVE_EVERY`. Which checkpoint does the rerun
#    resume from, and how many steps are repeated?
# 4. Train the json adapter for 10 steps only. Which fails first: validity (JSON parses) or correctness
#    (values copied from the prompt)?
# 5. On Colab with a T4: run with `PROFILE = "t4"` and `USE_DRIVE = True`, disconnect the runtime in the
#    middle of training (Runtime → Disconnect), reconnect and run all cells. Compare the measured time with
#    the estimate in section 9.

# %% [markdown]
# ## Quiz

# %%
from lessons_lib.quiz import show_quiz
show_quiz("01")
