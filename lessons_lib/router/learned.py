"""LearnedRouter: a LoRA sequence-classification adapter (task_type=SEQ_CLS) on the course's base model."""

from __future__ import annotations

import json
import random
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..i18n import plural_ru, tr
from ..manifest import MANIFEST_FILE
from ..recipes import ROUTER_BATCH, ROUTER_LEARNING_RATE, ROUTER_STEPS
from ..storage import ADAPTER_FILES, settle_leftovers
from .base import GENERAL, RouteDecision, Router, course_labels, router_folder
from .encode import encode_batch

ROUTER_FILE = "router.json"
# What a router folder may hold: the PEFT files, router.json, and what older saves or copies left (a re-save drops it).
FOLDER_FILES = (*ADAPTER_FILES, ROUTER_FILE, "README.md", MANIFEST_FILE)
DEFAULT_THRESHOLD = 0.5
# The shipped tiny router's recipe (profile.router_recipe on tiny), also what load_router trains.
TRAIN_STEPS, TRAIN_LR, TRAIN_BATCH = ROUTER_STEPS, ROUTER_LEARNING_RATE, ROUTER_BATCH


def router_train_steps(profile) -> int:
    """The full recipe's steps, capped by the profile's step budget (a rehearsal trains only a few)."""
    return profile.router_recipe.steps


def router_learning_rate(profile) -> float:
    """TRAIN_LR on the tiny model; on bigger bases scaled down as the profile's SFT learning rate is."""
    return profile.router_recipe.learning_rate


@contextmanager
def no_load_report():
    """Hide transformers' load report while loading a classifier: its fresh `score` head is expected."""
    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)


def load_classifier_base(profile, labels: Sequence[str] | None = None, tokenizer=None):
    """The profile's base model with a fresh classification head (`score`) over `labels` (default: the course's)."""
    from transformers import AutoModelForSequenceClassification

    from ..hub_access import explain_hub_errors
    from ..models import load_kwargs, load_tokenizer, model_source, quantization_config

    labels = tuple(labels or course_labels())
    source = model_source(profile)
    with explain_hub_errors(source), no_load_report():
        model = AutoModelForSequenceClassification.from_pretrained(
            source,
            **load_kwargs(profile, quantization_config(profile, log=lambda *_: None)),
            num_labels=len(labels),
            id2label=dict(enumerate(labels)),
            label2id={lbl: i for i, lbl in enumerate(labels)},
            use_cache=False,
        )  # a classifier never generates
    if model.config.pad_token_id is None:
        model.config.pad_token_id = (tokenizer or load_tokenizer(profile)).pad_token_id
    return model


def router_lora_config(profile):
    """LoRA on every linear layer, from the profile's router recipe; PEFT adds the `score` head to modules_to_save."""
    from peft import LoraConfig

    recipe = profile.router_recipe
    return LoraConfig(
        task_type="SEQ_CLS",
        r=recipe.lora_r,
        lora_alpha=recipe.lora_alpha,
        lora_dropout=recipe.lora_dropout,
        target_modules=recipe.target_modules,
    )


def prepare_for_training(model, profile):
    """PEFT's QLoRA preparation on a 4-bit base (norms and head in fp32, checkpointing as the profile says)."""
    from peft import prepare_model_for_kbit_training

    from ..train import is_quantized, quiet_checkpointing_notice

    if not is_quantized(model):
        return model
    checkpointing = profile.gradient_checkpointing and profile.gpu_path()
    with quiet_checkpointing_notice():
        return prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=checkpointing, gradient_checkpointing_kwargs={"use_reentrant": False}
        )


def half_dtype(model):
    """torch.float16 or bfloat16 when the frozen base computes in half precision (4-bit layers or fp16 weights)."""
    import torch

    halves = (torch.float16, torch.bfloat16)
    for module in model.modules():
        compute = getattr(module, "compute_dtype", None)  # bitsandbytes 4-bit layers compute in this dtype
        if compute in halves:
            return compute
    dtypes = {p.dtype for p in model.parameters() if not p.requires_grad}
    return next((d for d in halves if d in dtypes), None)


@dataclass(frozen=True)
class FitResult:
    """What a training run did."""

    steps: int
    seconds: float
    final_loss: float


def shuffled_batches(rows: Sequence[dict], batch_size: int, rng: random.Random) -> Iterator[list[dict]]:
    """Endless mini-batches: the rows reshuffled each time fewer than a batch remain."""
    order: list[int] = []
    while True:
        if len(order) < batch_size:
            more = list(range(len(rows)))
            rng.shuffle(more)
            order += more
        yield [rows[i] for i in order[:batch_size]]
        order = order[batch_size:]


def fit(
    model,
    tokenizer,
    rows: Sequence[dict],
    labels: Sequence[str] | None = None,
    steps: int = TRAIN_STEPS,
    batch_size: int = TRAIN_BATCH,
    learning_rate: float = TRAIN_LR,
    seed: int = 0,
    log=None,
    progress: bool = False,
) -> FitResult:
    """Train the trainable (LoRA + head) weights with AdamW on shuffled mini-batches; deterministic for a seed."""
    import torch
    from tqdm import tqdm  # a text bar: its last state is what a saved notebook shows (a widget bar stays at 0%)

    if not rows:
        raise ValueError(
            tr(
                en="No training rows: give {'text', 'label'} rows, e.g. from router.data.training_rows().",
                ru="Нет обучающих строк: передайте строки {'text', 'label'}, например из router.data.training_rows().",
            )
        )
    labels = tuple(labels or course_labels())
    index = {lbl: i for i, lbl in enumerate(labels)}
    bad = sorted({r["label"] for r in rows} - set(index))
    if bad:
        raise ValueError(
            tr(
                en=f"Training labels {bad} are not among the router's labels {tuple(labels)}.",
                ru=f"Обучающих меток {bad} нет среди меток маршрутизатора {tuple(labels)}.",
            )
        )
    torch.manual_seed(seed)
    rng = random.Random(seed)
    device = next(model.parameters()).device
    params = [p for p in model.parameters() if p.requires_grad]
    # fp16 bases (T4): trainable weights in fp32, forward under autocast, loss scaled so fp16 grads don't underflow
    half = half_dtype(model)
    scaler = torch.amp.GradScaler(device.type, enabled=half == torch.float16)
    optimizer = torch.optim.AdamW(params, lr=learning_rate, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / 10) * max(0.05, 1 - s / steps))
    model.train()
    start, loss_value = time.perf_counter(), float("nan")
    with warnings.catch_warnings():  # GradScaler skips a step whose scaled gradients overflowed; the schedule steps on
        warnings.filterwarnings("ignore", message="Detected call of `lr_scheduler.step", category=UserWarning)
        batches = shuffled_batches(rows, batch_size, rng)
        desc = tr(en="router training", ru="обучение маршрутизатора")
        for step in tqdm(range(steps), desc=desc, disable=not progress):
            batch = next(batches)
            enc = encode_batch(tokenizer, [r["text"] for r in batch], device)
            target = torch.tensor([index[r["label"]] for r in batch], device=device)
            with torch.autocast(device.type, dtype=half or torch.float32, enabled=half is not None):
                out = model(**enc, labels=target)
            scaler.scale(out.loss).backward()
            scaler.step(optimizer)
            scaler.update()
            schedule.step()
            optimizer.zero_grad()
            loss_value = out.loss.item()
            if log and (step % 20 == 0 or step == steps - 1):
                log(tr(en=f"step {step:4d}  loss {loss_value:.3f}", ru=f"шаг {step:4d}  loss {loss_value:.3f}"))
    model.eval()
    return FitResult(steps, time.perf_counter() - start, loss_value)


class LearnedRouter(Router):
    """Classifies prompts with a PEFT SEQ_CLS model; below `threshold` confidence it answers "general"."""

    def __init__(
        self,
        model,
        tokenizer,
        labels: Sequence[str] | None = None,
        threshold: float = DEFAULT_THRESHOLD,
        fallback: str = GENERAL,
        batch_size: int = 32,
    ):
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(
                tr(
                    en=f"threshold must be between 0 and 1 (a probability), got {threshold}.",
                    ru=f"threshold должен быть от 0 до 1 (это вероятность), получено {threshold}.",
                )
            )
        labels = tuple(labels or course_labels())
        if fallback not in labels:
            raise ValueError(
                tr(
                    en=f"fallback {fallback!r} must be one of the labels {tuple(labels)}.",
                    ru=f"fallback {fallback!r} должен быть одной из меток {tuple(labels)}.",
                )
            )
        n_out = getattr(model.config, "num_labels", len(labels))
        if n_out != len(labels):
            raise ValueError(
                tr(
                    en=f"The model has {n_out} outputs but {len(labels)} labels were given.",
                    ru=f"У модели {n_out} {plural_ru(n_out, 'выход', 'выхода', 'выходов')}, а меток передано "
                    f"{len(labels)}.",
                )
            )
        self.model, self.tokenizer = model, tokenizer
        self.labels, self.threshold, self.fallback, self.batch_size = tuple(labels), threshold, fallback, batch_size
        self.half = half_dtype(model)  # a trained fp32 head on an fp16 base: route under autocast, as in training

    def probabilities(self, texts: Sequence[str]):
        """Softmax class probabilities, one row per prompt (a torch tensor on the CPU)."""
        import torch

        device = next(self.model.parameters()).device
        chunks = []
        self.model.eval()
        half = self.half
        with torch.no_grad(), torch.autocast(device.type, dtype=half or torch.float32, enabled=half is not None):
            for start in range(0, len(texts), self.batch_size):
                enc = encode_batch(self.tokenizer, texts[start : start + self.batch_size], device)
                chunks.append(self.model(**enc).logits.float().softmax(-1).cpu())
        return torch.cat(chunks)

    def _route_many(self, texts: list[str]) -> list[RouteDecision]:
        decisions = []
        for row in self.probabilities(texts).tolist():
            scores = dict(zip(self.labels, row))
            best = max(scores, key=scores.get)
            if scores[best] < self.threshold:
                reason = tr(
                    en=f"low confidence ({best} {scores[best]:.2f} < {self.threshold:.2f}) → {self.fallback}",
                    ru=f"низкая уверенность ({best} {scores[best]:.2f} < {self.threshold:.2f}) → {self.fallback}",
                )
                decisions.append(RouteDecision(self.fallback, scores, reason))
            else:
                decisions.append(
                    RouteDecision(
                        best,
                        scores,
                        tr(
                            en=f"classifier: {best} with p={scores[best]:.2f}",
                            ru=f"классификатор: {best}, p={scores[best]:.2f}",
                        ),
                    )
                )
        return decisions

    def calibrate(self, dev: Sequence[dict]) -> float:
        """Set the confidence threshold that routes `dev` ({"text", "label"} rows) best; returns that accuracy."""
        from .metrics import choose_threshold

        if not dev:
            raise ValueError(
                tr(
                    en="calibrate needs dev rows ({'text', 'label'}); router.data.course_splits makes them.",
                    ru="calibrate нужны строки dev ({'text', 'label'}); их делает router.data.course_splits.",
                )
            )
        probabilities = self.probabilities([r["text"] for r in dev]).tolist()
        gold = [r["label"] for r in dev]
        self.threshold, accuracy = choose_threshold(probabilities, gold, self.labels, self.fallback)
        return accuracy

    def save(self, folder: str | Path, extra: dict | None = None) -> Path:
        """Save the adapter (LoRA + head) and the router's labels/threshold next to it, replacing `folder` whole.

        A save killed at any moment leaves the old router or the new one (`load` settles what it left aside).
        """
        from ..manifest import base_model_id
        from ..storage import stamp_base

        meta = {"labels": list(self.labels), "threshold": self.threshold, "fallback": self.fallback, **(extra or {})}
        with router_folder(folder, FOLDER_FILES) as staging:
            self.model.save_pretrained(staging)
            stamp_base(staging, base_model_id(self.model))  # the portable base id, not this machine's path
            (staging / "README.md").unlink(missing_ok=True)  # PEFT's empty model card, which names that path too
            (staging / ROUTER_FILE).write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        return Path(folder)

    @classmethod
    def load(cls, folder: str | Path, profile, tokenizer=None, threshold: float | None = None) -> LearnedRouter:
        """Load a saved router adapter onto a fresh classifier base of `profile`."""
        from peft import PeftModel

        from ..models import load_tokenizer

        folder = Path(folder)
        settle_leftovers(folder)
        if not (folder / "adapter_config.json").is_file():
            raise FileNotFoundError(
                tr(
                    en=f"No router adapter at {folder}. Train one with `python -m lessons_lib.router train` "
                    "(or notebook 04).",
                    ru=f"В {folder} нет адаптера маршрутизатора. Обучите его командой "
                    "`python -m lessons_lib.router train` (или в ноутбуке 04).",
                )
            )
        meta = (
            json.loads((folder / ROUTER_FILE).read_text(encoding="utf-8")) if (folder / ROUTER_FILE).is_file() else {}
        )
        labels = tuple(meta.get("labels") or course_labels())
        tokenizer = tokenizer or load_tokenizer(profile)
        model = PeftModel.from_pretrained(load_classifier_base(profile, labels, tokenizer), folder)
        model.eval()
        return cls(
            model,
            tokenizer,
            labels,
            meta.get("threshold", DEFAULT_THRESHOLD) if threshold is None else threshold,
            meta.get("fallback", GENERAL),
        )


def train_learned_router(
    profile,
    rows: Sequence[dict],
    steps: int = TRAIN_STEPS,
    seed: int = 0,
    log=None,
    threshold: float = DEFAULT_THRESHOLD,
    **fit_kwargs,
) -> tuple[LearnedRouter, FitResult]:
    """Fresh classifier base + LoRA SEQ_CLS adapter, trained on `rows` (QLoRA-prepared on a 4-bit base)."""
    import torch
    from peft import get_peft_model

    from ..models import load_tokenizer
    from ..train import keep_adapter_fp32, quiet_checkpointing_notice

    torch.manual_seed(seed)
    tokenizer = load_tokenizer(profile)
    base = prepare_for_training(load_classifier_base(profile, tokenizer=tokenizer), profile)
    with quiet_checkpointing_notice():
        model = get_peft_model(base, router_lora_config(profile))
    keep_adapter_fp32(model)  # PEFT upcasts LoRA but leaves the `score` head (modules_to_save) in fp16
    fit_kwargs.setdefault("learning_rate", profile.router_recipe.learning_rate)
    fit_kwargs.setdefault("batch_size", profile.router_recipe.batch_size)
    labels = course_labels()
    result = fit(model, tokenizer, rows, labels, steps=steps, seed=seed, log=log, **fit_kwargs)
    return LearnedRouter(model, tokenizer, labels, threshold), result


def describe_training(profile, steps: int, batch_size: int = TRAIN_BATCH) -> str:
    """The time estimate for training the router: padded tokens per step at the profile's tokens/s."""
    from ..budget import estimate_sentence, padded_length
    from ..models import load_tokenizer
    from .data import training_rows
    from .encode import router_texts

    if profile.rehearsal:
        return tr(en="a CPU rehearsal: seconds", ru="репетиция на CPU: секунды")
    if not profile.train_tokens_per_second:
        return tr(en="no time estimate for this profile", ru="для этого профиля нет оценки времени")
    tok = load_tokenizer(profile)
    texts = router_texts(tok, [r["text"] for r in training_rows(16)])
    tokens = batch_size * padded_length([len(tok(t, add_special_tokens=False)["input_ids"]) for t in texts], batch_size)
    return estimate_sentence(steps * tokens / profile.train_tokens_per_second, tokens, profile)


def train_and_save(
    profile,
    folder: str | Path,
    steps: int,
    seed: int = 0,
    log=print,
    learning_rate: float | None = None,
    heldout: Sequence[dict] | None = None,
) -> Path:
    """The course's recipe: train on the train split for `steps` steps, choose the threshold on dev, save to `folder`.

    The splits are `data.course_splits`, the n-gram router's: template rows + 2/3 of the hand-written natural
    requests to train on, the other third to choose the threshold. `heldout` rows, if given, are scored once at the
    end (router.json's `heldout_accuracy`)."""
    from .data import course_splits
    from .metrics import evaluate_router

    train, dev = course_splits(seed=seed)
    lr = learning_rate or router_learning_rate(profile)
    router, result = train_learned_router(profile, train, steps=steps, seed=seed, progress=True, learning_rate=lr)
    dev_accuracy = router.calibrate(dev)
    scored = {} if heldout is None else {"heldout_accuracy": round(evaluate_router(router, heldout).accuracy, 4)}
    log(
        tr(
            en=f"router: {result.steps} steps in {result.seconds:.0f} s, final loss {result.final_loss:.3f}; "
            f"threshold {router.threshold:.2f} chosen on dev (accuracy {dev_accuracy:.3f})",
            ru=f"маршрутизатор: {result.steps} шагов за {result.seconds:.0f} с, итоговый loss {result.final_loss:.3f}; "
            f"порог {router.threshold:.2f} выбран на dev (точность {dev_accuracy:.3f})",
        )
    )
    return router.save(
        folder,
        extra={
            "profile": profile.name,
            "steps": result.steps,
            "seed": seed,
            "learning_rate": lr,
            "final_loss": round(result.final_loss, 4),
            "train_rows": len(train),
            "dev_rows": len(dev),
            "dev_accuracy": round(dev_accuracy, 4),
            **scored,
        },
    )
