"""A retrain, stage by stage, on the driver (Ray and MLflow from here on).

    1. plan: complete partitions neither in the ingest ledger nor waiting for a person; none: done
    2. lock the dataset (another retrain holds it: ``RetrainLocked``, exit 75)
    3. ingest them (a nested run) without publishing; the data gate; publish, or record why not (exit 3)
    4. the candidate: the champion fine-tuned on the new images plus replayed old ones; without a
       champion, pre-training then fine-tuning on the whole dataset, as ``make run`` does
    5. candidate and champion scored on the fixed test split (nested runs); the paired bootstrap decides
    6. the candidate registered (once per run key); the alias read again; ``champion`` moved last

Each stage's completion is saved in ``retrain/pending.json`` (``state``): a rerun after a crash
resumes at the next stage, in the same MLflow parent run, and Ray Train resumes a fit from its last
checkpoint because the run names derive from the run key. Between a stage's work and its saved
completion, the rerun finds the work done (the partitions in the ledger, the fit's finished run, the
version tagged with the run key, the alias on it) and records it instead of doing it again: a kill at
any boundary of ``crashes.CRASH_POINTS``, then the same command, completes the retrain once.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from components import storage
from components.cluster import check_can_start, init_ray
from components.config import JobConfig
from components.data.ingest.partitions import IngestResult, Plan, commit_ingest, plan_ingest
from components.data.prepare import prepare_dataset, with_vocabulary
from components.data.release.dataset import PreparedDataset
from components.data.release.format import write_release
from components.data.release.layout import images_folder
from components.data.release.table import head_rows, partition_ledger
from components.errors import DataGateFailed, RetrainError
from components.evaluation.oracle import validation_field_sheet
from components.evaluation.tracked_evaluation import Evaluated, evaluate_and_log, metric_value
from components.metric_names import named
from components.redaction import redact
from components.retraining.comparison import COMPARED, Decision, comparison_figure, decide, paired_gain
from components.retraining.crashes import crash_point
from components.retraining.gate import data_figures, gate_reasons
from components.retraining.lock import Lock, hold_lock
from components.retraining.replay import write_view
from components.retraining.state import (
    HELD_DIR,
    LOCK_FILE,
    VIEWS_DIR,
    Pending,
    clear_pending,
    count_failure,
    load_attempts,
    load_last,
    load_pending,
    run_key,
    save_attempts,
    save_last,
    save_pending,
    waiting_for_a_person,
)
from components.retraining.tracked_ingest import ingest_planned
from components.serving.registry import Score
from components.tracking.registry import CHALLENGER, CHAMPION, ModelVersion, Promotion, Registry, version_number
from components.tracking.runs import TrackedRun, job_run, new_run_name, portable, run_tagged, tracked_run
from components.tracking.sources import ModelSource, logged_model_uri
from components.training.driver import extend_vocabulary, finetune_job, vocabulary_params
from components.training.tracked_fit import tracked_fit

log = logging.getLogger(__name__)
RUN_KEY_TAG = "retrain_run_key"
STARTED_TAG = "retrain_started"  # with the run key, one retrain (the same crawl may be retried another night)
GATE = (DataGateFailed,)  # a failed data gate is an outcome: the retrain's run ends FINISHED


@dataclass
class RetrainOutcome:
    outcome: str  # nothing_to_do, promoted, kept_champion
    lines: list[str] = field(default_factory=list)
    run_key: str | None = None
    registered_version: str | None = None

    def summary(self) -> str:
        return "\n".join(self.lines)


def retrain(job: JobConfig, crawl_root: str, retry: Sequence[str] = ()) -> RetrainOutcome:
    """One scheduled retrain of ``job.data.dataset`` on the new partitions of ``crawl_root``."""
    dataset = job.data.dataset
    if load_pending(dataset) is None and not retry:
        plan = plan_new(job, crawl_root)  # read-only: with nothing new, nothing is touched
        if not plan.partitions:
            return nothing_to_do(dataset, crawl_root, plan)
    check_can_start(job)  # another local Ray cluster: exit 75 now, before the lock or a pending retrain
    with hold_lock(
        storage.join(dataset, LOCK_FILE), job.retrain.lock_lease_s, f"retrain of {redact(crawl_root)}"
    ) as lock:
        forget_failures(dataset, retry)
        pending = load_pending(dataset)
        if pending is None:
            plan = plan_new(job, crawl_root)
            if not plan.partitions:
                return nothing_to_do(dataset, crawl_root, plan)
            pending = begin(job, crawl_root, plan)
        else:
            log.info("resuming retrain %s after its stage '%s'", pending.run_key, pending.stage)
        return Retrain(job, crawl_root, pending, lock).run()


def plan_new(job: JobConfig, crawl_root: str, only: Sequence[str] | None = None) -> Plan:
    """The ingest plan without the partitions that wait for a person (or only ``only``)."""
    plan = plan_ingest(job.data.dataset, crawl_root, job.ingest)
    waiting = waiting_for_a_person(load_attempts(job.data.dataset), plan.keys, job.retrain.max_gate_attempts)
    for partition in list(plan.partitions):
        dropped = partition.name in waiting or (only is not None and partition.name not in only)
        if dropped:
            plan.partitions.remove(partition)
            del plan.keys[partition.name]
            if partition.name in waiting:
                plan.skipped[partition.name] = waiting[partition.name]
    return plan


def forget_failures(dataset: str, partitions: Sequence[str]) -> None:
    """These partitions' gate failures forgotten (``--retry``, or they passed the gate)."""
    attempts = load_attempts(dataset)
    if any(name in attempts for name in partitions):
        save_attempts(dataset, {k: v for k, v in attempts.items() if k not in partitions})
        log.info("gate failures forgotten for %s", ", ".join(p for p in partitions if p in attempts))


def nothing_to_do(dataset: str, crawl_root: str, plan: Plan) -> RetrainOutcome:
    lines = [f"nothing to do: no complete partition under {redact(crawl_root)} is new"]
    lines += [f"  {name}: {why}" for name, why in plan.skipped.items()]
    last = load_last(dataset)
    if last:
        version = f", version {last['registered_version']}" if last.get("registered_version") else ""
        lines.append(f"last retrain {last['run_key']}: {last['outcome']}{version} ({last['finished']})")
    log.info("%s", "\n".join(lines))
    return RetrainOutcome("nothing_to_do", lines)


def begin(job: JobConfig, crawl_root: str, plan: Plan) -> Pending:
    """A new retrain: its run key and its pending record (its MLflow parent run opens with ``run``)."""
    champion_number = version_number(Registry(job.tracking.tracking_uri, job.tracking.registered_model).champion())
    key = run_key(plan.keys, champion_number)
    pending = Pending(key, dict(plan.keys), champion_number, parent_run_id=None)
    save_pending(job.data.dataset, pending)
    crash_point("started")
    log.info("retrain %s: partitions %s, champion %s", key, ", ".join(plan.keys), champion_number or "none")
    return pending


class Retrain:
    """The stages of one retrain (see the module's docstring)."""

    def __init__(self, job: JobConfig, crawl_root: str, pending: Pending, lock: Lock):
        self.job, self.crawl_root, self.pending, self.lock = job, crawl_root, pending, lock
        self.dataset = job.data.dataset
        self.registry = Registry(job.tracking.tracking_uri, job.tracking.registered_model)
        self.name = job.tracking.registered_model
        self.parent = TrackedRun(job.tracking.tracking_uri, pending.parent_run_id) if pending.parent_run_id else None
        self.scoring_mode = "char"  # set by each evaluation from the model's tokenizer
        self.ingested: PreparedDataset | None = None  # the dataset after this retrain's ingest, prepared once

    def run(self) -> RetrainOutcome:
        with self.parent_run() as self.parent:
            init_ray(self.job)
            if not self.pending.reached("ingested"):
                self.ingest_and_gate()
            if not self.pending.reached("trained"):
                self.train_candidate()
            if not self.pending.reached("registered"):
                self.compare_and_register()
            return self.finish()

    @contextlib.contextmanager
    def parent_run(self) -> Iterator[TrackedRun]:
        """The retrain's MLflow run, the parent of its nested ones: opened by the first run of this
        retrain (its id saved in the pending record), reopened by a rerun after a crash (also one
        killed before it saved the id: the run carries the retrain's key and start); ended FINISHED
        after a decision or a failed data gate (both are outcomes), FAILED after an error."""
        if self.pending.parent_run_id is None:
            self.pending.parent_run_id = self.orphaned_parent()
        if self.pending.parent_run_id is not None:
            tags = {"resumed_at_stage": self.pending.stage}
            with tracked_run(self.job.tracking, run_id=self.pending.parent_run_id, tags=tags, outcomes=GATE) as run:
                yield run
            return
        tags = {
            RUN_KEY_TAG: self.pending.run_key,
            STARTED_TAG: self.pending.started,
            "crawl_root": redact(self.crawl_root),
            "partitions": ",".join(self.pending.partitions),
            "champion_at_start": self.pending.champion_version or "none",
        }
        with job_run(self.job, f"retrain-{self.pending.run_key}", tags=tags, outcomes=GATE) as run:
            crash_point("parent_created")
            self.pending.parent_run_id = run.run_id
            save_pending(self.dataset, self.pending)
            yield run

    def orphaned_parent(self) -> str | None:
        """This retrain's MLflow run, opened before a kill that came before its id was saved."""
        found = run_tagged(self.job.tracking, {RUN_KEY_TAG: self.pending.run_key, STARTED_TAG: self.pending.started})
        if found is None:
            return None
        log.info("taking over retrain run %s (%s), left without its id in pending.json", *found)
        return found[0]

    def current(self) -> PreparedDataset:
        """The dataset as this retrain left it after its ingest (what the candidate is scored on and
        what the registry records), prepared once."""
        if self.ingested is None:
            _, self.ingested = prepare_dataset(self.job)
        return self.ingested

    def advance(self, stage: str) -> None:
        save_pending(self.dataset, self.pending, stage)
        crash_point(stage)
        self.parent.set_tag("retrain_stage", stage)

    # -- 3. ingest and the data gate ----------------------------------------------------------------
    def ingest_and_gate(self) -> None:
        versions = self.published_ingest() or self.ingest_gate_and_publish()
        crash_point("published")
        forget_failures(self.dataset, list(self.pending.partitions))  # they passed: earlier failures are moot
        self.pending.previous_version, self.pending.version = versions
        self.parent.log_dataset(self.dataset, self.pending.version, "training")
        self.advance("ingested")

    def published_ingest(self) -> tuple[str, str] | None:
        """(version ingested into, version made) when the ledger has this retrain's partitions with
        their keys already: it was killed after publishing, before saving the stage, and goes on from
        there (the partitions are no longer new, so planning them again would find nothing)."""
        ledger = partition_ledger(self.dataset)
        entries = {name: ledger.get(name, {}) for name in self.pending.partitions}
        if any(entries[name].get("key") != key for name, key in self.pending.partitions.items()):
            return None
        version = next(iter(entries.values()))["version"]
        previous = str(int(version) - 1)  # an ingest's commit is one version on top of the one it read
        log.info("retrain %s: its ingest was published already (version %s)", self.pending.run_key, version)
        return previous, version

    def ingest_gate_and_publish(self) -> tuple[str, str]:
        """Ingest the partitions without publishing, check the data gate, publish; (previous, new) version."""
        plan = plan_new(self.job, self.crawl_root, only=list(self.pending.partitions))
        if plan.keys != self.pending.partitions:
            raise RetrainError(
                f"the partitions of retrain {self.pending.run_key} changed since it started "
                f"({self.pending.partitions} then, {plan.keys} now); "
                f"remove {self.dataset}/retrain/pending.json to start over"
            )
        result = ingest_planned(self.job, plan, self.crawl_root, parent_run_id=self.parent.run_id, commit=False)
        crash_point("ingest_checked")
        fixed = [row["image_id"] for split in ("val", "test") if split in plan.table.splits
                 for row in head_rows(plan.table, split)]  # fmt: skip
        figures = data_figures(result, fixed)
        self.parent.log_metrics(figures.metrics())
        reasons = gate_reasons(figures, self.job.retrain)
        if reasons:
            self.gate_failed(result, reasons)
        commit_ingest(result, note={RUN_KEY_TAG: self.pending.run_key})
        return result.previous_version, result.version

    def gate_failed(self, result: IngestResult, reasons: list[str]) -> None:
        """Record a failed gate everywhere a person looks, count it per partition, and stop (exit 3).
        The new records are kept beside the dataset in the release format, not committed to its table."""
        kept = ""
        if result.new_records:
            held = storage.join(self.dataset, HELD_DIR, self.pending.run_key)
            write_release(held, result.new_records, {"train": [r.image_id for r in result.new_records]})
            kept = f"; the ingested records are kept in {held} (release format, images in the dataset's images/)"
        crash_point("gate_version_written")
        pending, attempts = self.pending, load_attempts(self.dataset)
        attempts = count_failure(attempts, pending.partitions, reasons, pending.run_key, pending.started)
        save_attempts(self.dataset, attempts)
        crash_point("gate_failure_counted")
        counts = ", ".join(f"{name} {attempts[name]['attempts']}x" for name in self.pending.partitions)
        self.parent.set_tags({"retrain_outcome": "data_gate_failed", "data_gate_reasons": "; ".join(reasons)[:4000]})
        self.parent.log_text("\n".join(reasons) + "\n", "retrain/data_gate.txt")
        save_last(self.dataset, self.pending, "data_gate_failed", reasons=reasons)
        clear_pending(self.dataset)
        raise DataGateFailed(
            f"the data gate failed for {', '.join(self.pending.partitions)} (attempts: {counts}), nothing was "
            f"trained: {'; '.join(reasons)}{kept}"
        )

    # -- 4. the candidate ---------------------------------------------------------------------------
    def train_candidate(self) -> None:
        name = f"retrain-{self.pending.run_key}-finetune"
        self.pending.candidate_run_id = self.finished_fit(name) or self.fit_candidate(name)
        crash_point("candidate_fitted")
        self.advance("trained")

    def finished_fit(self, ray_run_name: str) -> str | None:
        """The run of a fit that finished with its model before a kill kept its stage from being saved."""
        found = run_tagged(self.job.tracking, {"ray_run_name": ray_run_name})
        if found is None or found[1] != "FINISHED":
            return None
        if logged_model_uri(found[0], self.job.tracking.tracking_uri) is None:
            return None
        log.info("%s finished already (run %s): not trained again", ray_run_name, found[0])
        return found[0]

    def fit_candidate(self, name: str) -> str:
        """The champion (or a new pre-training) fine-tuned, in the run ``name``; the run's id."""
        key, uri = self.pending.run_key, self.job.tracking.tracking_uri
        data: dict[str, str] = {}
        if self.pending.champion_version is None:
            source = ModelSource.parse(self.pretrain())
        else:
            source = ModelSource.registered(self.name, self.pending.champion_version)
            folder = storage.join(self.dataset, VIEWS_DIR, key)
            ratio, seed = self.job.retrain.replay_ratio, self.job.train.seed
            counts = write_view(self.dataset, self.pending.previous_version, folder, ratio, seed)
            self.parent.log_metrics(named("replay", {k: float(v) for k, v in counts.items()}))
            data = {"dataset": folder, "images_root": images_folder(self.dataset)}
        start = source.load_for_inference(uri)
        job = self.job.with_overrides(
            task="finetune", init_from=source.text, train={"steps": self.job.retrain.finetune_steps}, data=data
        )
        job = finetune_job(job, start.job)  # the champion's (or pre-training's) model ...
        # ... and its vocabulary, grown by the tokens the dataset's vocabulary gained since
        job, tokenizer, weights, added = extend_vocabulary(job, start, self.current().tokenizer)
        if data:  # the view of new and replayed images: a dataset of its own
            job, dataset = prepare_dataset(job, tokenizer)
        else:
            dataset = self.current().with_tokenizer(tokenizer)
        fitted = tracked_fit(
            job,
            dataset,
            name,  # the same name on a rerun: Ray Train resumes from its checkpoint
            parent_run_id=self.parent.run_id,
            tags={RUN_KEY_TAG: key, "init_from": source.text},
            init_weights=weights,
            params=vocabulary_params(start, added),
            fields=validation_field_sheet(dataset.table, job.data.val_images),  # the view's val is the dataset's
        )
        return fitted.run_id

    def pretrain(self) -> str:
        """Without a champion: pre-train on the whole dataset first (once); the run's id."""
        if not self.pending.reached("pretrained"):
            name = f"retrain-{self.pending.run_key}-pretrain"
            self.pending.pretrain_run_id = self.finished_fit(name) or self.fit_pretraining(name)
            crash_point("pretrain_fitted")
            self.advance("pretrained")
        return self.pending.pretrain_run_id

    def fit_pretraining(self, name: str) -> str:
        """Pre-training on the whole dataset, in the run ``name``; the run's id."""
        dataset = self.current()
        job = with_vocabulary(self.job.with_overrides(task="pretrain"), dataset.tokenizer)
        fitted = tracked_fit(
            job,
            dataset,
            name,
            parent_run_id=self.parent.run_id,
            tags={RUN_KEY_TAG: self.pending.run_key},
            fields=validation_field_sheet(dataset.table, job.data.val_images),
        )
        return fitted.run_id

    # -- 5 and 6. compare, register, promote ----------------------------------------------------------
    def compare_and_register(self) -> None:
        """Through the registry's one promotion decision (``Registry.promote``), shared with sweeps and
        fine-tunes: the candidate judged against whoever holds ``champion`` when the alias moves. The
        decision is recorded in the retrain's run before the alias moves (a rerun records it again)."""
        candidate = self.evaluate(ModelSource.parse(self.pending.candidate_run_id), "candidate")
        judged: dict[str, Any] = {}

        def judge(holder: ModelVersion | None) -> Promotion | None:
            if self.already_promoted(holder):
                return None
            decision, champion = self.decide(candidate, holder)
            version = self.register(candidate, decision)
            self.parent.set_tags({**decision.tags(), "registered_version": version})
            figure = comparison_figure(_metrics(candidate), champion, decision)
            self.parent.log_figure(figure, "retrain/comparison.png")
            judged.update(decision=decision)
            return Promotion(version, decision.promote)

        verdict, _, alias = self.registry.promote(judge, before_move=self.check_lock)
        if verdict is None:  # promoted before a kill that came before the stage was saved
            self.parent.set_tag("registered_alias", CHAMPION)
            self.advance("registered")
            return
        crash_point("alias_moved")
        decision = judged["decision"]
        self.parent.set_tag("registered_alias", alias)
        self.pending.registered_version, self.pending.decision = verdict.version, decision.as_dict()
        self.advance("registered")
        log.info("candidate version %s -> @%s: %s", verdict.version, alias, "; ".join(decision.reasons))

    def check_lock(self) -> None:
        if self.lock.lost:
            raise RetrainError("another process took the retrain lock over; the champion was not moved")

    def already_promoted(self, holder: ModelVersion | None) -> bool:
        """After a crash between moving the alias and saving the stage, the champion is ours already."""
        if holder is None or holder.tags.get(RUN_KEY_TAG) != self.pending.run_key:
            return False
        self.pending.registered_version = str(holder.version)
        self.pending.decision = {"promote": True, "reasons": [holder.tags.get("retrain_reasons", "")], "gain": None}
        return True

    def decide(self, candidate: Evaluated, holder: ModelVersion | None) -> tuple[Decision, dict[str, float] | None]:
        if holder is None:
            return decide(_metrics(candidate), None, None, self.job.retrain), None
        champion = self.evaluate(ModelSource.registered(self.name, holder.version), f"champion-v{holder.version}")
        limits = self.job.retrain
        gain = paired_gain(
            candidate.rows,
            champion.rows,
            self.scoring_mode,
            samples=limits.bootstrap_samples,
            confidence=limits.confidence,
            seed=self.job.train.seed,
        )
        metrics = _metrics(champion)
        return decide(_metrics(candidate), metrics, gain, limits, "CIDEr", str(holder.version)), metrics

    def evaluate(self, source: ModelSource, role: str) -> Evaluated:
        checkpoint = source.load_for_inference(self.job.tracking.tracking_uri)
        self.scoring_mode = checkpoint.tokenizer.mode  # characters or words, as the evaluation scored them
        evaluated = evaluate_and_log(
            self.job,
            self.current(),
            checkpoint,
            "test",
            run_name=new_run_name(f"evaluate-{role}-test"),
            parent_run_id=self.parent.run_id,
            tags={RUN_KEY_TAG: self.pending.run_key, "role": role, "model_source": source.text},
            limit=self.job.retrain.test_images,
            sheets=4,
        )
        # Side by side in the retrain run: which input the candidate reads better or worse than the champion,
        # and how many of its captions could be published.
        side = role.partition("-")[0]  # candidate, champion
        side_by_side = {**evaluated.report.fields, **evaluated.report.publishing}
        self.parent.log_metrics(named(side, side_by_side))  # candidate/..., champion/...
        return evaluated

    def register(self, candidate: Evaluated, decision: Decision) -> str:
        """The candidate as a version of the registered model, once per run key; the decision as tags."""
        key = self.pending.run_key
        found = self.registry.versions_tagged(RUN_KEY_TAG, key)
        if found:
            number = str(found[0].version)
        else:
            report = candidate.report
            score = Score("CIDEr", "test", self.current().version, report.images, metric_value(report, "CIDEr"))
            model_uri = logged_model_uri(self.pending.candidate_run_id, self.job.tracking.tracking_uri)
            if model_uri is None:
                raise RetrainError(f"the candidate's run {self.pending.candidate_run_id} logged no model")
            tags = {
                RUN_KEY_TAG: key,
                "data_version": score.data_version,
                "dataset": redact(portable(self.dataset)),  # without this machine's folders
                **score.tags(),
            }
            run_id = self.pending.candidate_run_id
            added = self.registry.add_version(model_uri, run_id=run_id, tags=tags, description=score.description())
            number = str(added.version)
            crash_point("candidate_registered")
        for tag, value in decision.tags().items():
            self.registry.tag_version(number, tag, value)
        return number

    def finish(self) -> RetrainOutcome:
        decision = self.pending.decision or {}
        outcome = "promoted" if decision.get("promote") else "kept_champion"
        self.parent.set_tag("retrain_outcome", outcome)
        save_last(self.dataset, self.pending, outcome)
        crash_point("outcome_recorded")
        clear_pending(self.dataset)
        alias = CHAMPION if outcome == "promoted" else CHALLENGER
        lines = [
            f"retrain {self.pending.run_key}: partitions {', '.join(self.pending.partitions)} -> dataset version "
            f"{self.pending.version}; candidate {self.name} version {self.pending.registered_version} -> @{alias}",
            *[f"  {reason}" for reason in decision.get("reasons", [])],
        ]
        return RetrainOutcome(outcome, lines, self.pending.run_key, self.pending.registered_version)


def _metrics(evaluated: Evaluated) -> dict[str, float]:
    """What the decision compares: the paper's metrics and the publishing rates, where checks ran."""
    return {**{name: metric_value(evaluated.report, name) for name in COMPARED}, **evaluated.report.publishing}
