"""Run keys are stable and records are written atomically and read defensively."""

import json

import pytest

from bench.recipe import Recipe
from bench.store import RunSpec, RunStore, UnreadableRecord

SPEC = RunSpec(method="dense", model="resnet20", dataset="cifar10", density=1.0, seed=0,
               recipe=Recipe(epochs=20, lr=0.1, weight_decay=5e-4))


def test_pinned_keys():
    # These keys name results on disk: they must never drift. A deliberate change bumps
    # SUITE_KEY_VERSION (or a method's version) and updates these pins in the same commit.
    assert SPEC.key == PINNED["dense"]
    snip = RunSpec(method="snip", model="resnet20", dataset="cifar100", density=0.02, seed=2,
                   recipe=Recipe(epochs=160, schedule="multistep", milestones=(80, 120)))
    assert snip.key == PINNED["snip"]
    lth = RunSpec(method="lth", model="vgg16", dataset="cifar10", density=0.1, seed=1,
                  recipe=Recipe(), hparams={"rewind_epoch": 0}, model_kwargs={"width": 0.5},
                  train_subset=2000, test_subset=1000, method_version=2)
    assert lth.key == PINNED["lth"]


PINNED = {"dense": "7856c4aaccb9f1f7", "snip": "6a66eeacb5612183", "lth": "11a80a51a34873fa"}


def test_key_depends_on_every_field_and_not_on_spelling():
    assert RunSpec(**{**SPEC.__dict__, "density": 1}).key == SPEC.key  # int vs float
    for change in ({"seed": 1}, {"density": 0.5}, {"model": "resnet32"}, {"dataset": "cifar100"},
                   {"method_version": 2}, {"hparams": {"x": 1}}, {"train_subset": 100},
                   {"recipe": Recipe(epochs=21, lr=0.1, weight_decay=5e-4)}):
        assert RunSpec(**{**SPEC.__dict__, **change}).key != SPEC.key, change


def test_default_values_do_not_enter_the_key():
    explicit = RunSpec(**{**SPEC.__dict__, "recipe": Recipe(epochs=20, weight_decay=5e-4,
                                                           batch_size=128, optimizer="sgd")})
    assert explicit.key == SPEC.key


def test_spec_round_trips_through_a_record():
    spec = RunSpec(method="lth", model="vgg16", dataset="cifar10", density=0.1, seed=1,
                   recipe=Recipe(schedule="multistep", milestones=(3, 6)),
                   hparams={"rewind_epoch": 0}, train_subset=2000)
    again = RunSpec.from_record(json.loads(json.dumps(spec.to_record())))
    assert again == spec and again.key == spec.key


METRICS = {"test_accuracy": 50.0, "test_loss": 1.5, "artifact_bytes": 10,
           "artifact_file": "model-0123456789abcdef.bpa"}


def test_atomic_write_and_read(tmp_path):
    store = RunStore(tmp_path)
    record = {"status": "finished", "spec": SPEC.to_record(), "key": SPEC.key,
              "metrics": METRICS}
    store.write(SPEC.key, record)
    assert store.read(SPEC.key) == record
    assert [p.name for p in store.run_dir(SPEC.key).iterdir()] == ["record.json"]
    assert store.read("0" * 16) is None


@pytest.mark.parametrize("content", ["{not json", "[]", '{"status": "weird", "spec": {}}', ""])
def test_unreadable_record_is_named_and_set_aside(tmp_path, content, capsys):
    store = RunStore(tmp_path)
    path = store.record_path(SPEC.key)
    path.parent.mkdir(parents=True)
    path.write_text(content)
    with pytest.raises(UnreadableRecord, match=str(path)):
        store.read(SPEC.key)
    assert list(store.records()) == []
    (line,) = capsys.readouterr().err.splitlines()  # one line, not a Python UserWarning
    assert line.startswith(f"warning: unreadable record {path}")
    aside = store.set_aside(SPEC.key)
    assert aside.exists() and not path.exists() and aside.read_text() == content


def _record(status: str, **extra) -> dict:
    record = {"status": status, "spec": SPEC.to_record(), "key": SPEC.key, **extra}
    if status == "finished":
        record["metrics"] = METRICS
    return record


def test_a_record_is_never_replaced_by_a_worse_status(tmp_path):
    store = RunStore(tmp_path)
    assert store.write(SPEC.key, _record("running"))
    assert store.write(SPEC.key, _record("failed"))
    assert store.write(SPEC.key, _record("running"))  # a retry of a failure
    assert store.write(SPEC.key, _record("diverged"))
    assert not store.write(SPEC.key, _record("running"))
    assert store.write(SPEC.key, _record("finished", attempt=1))
    for worse in ("running", "failed", "diverged"):
        assert not store.write(SPEC.key, _record(worse))
        assert store.read(SPEC.key)["status"] == "finished"
    assert store.write(SPEC.key, _record("finished", attempt=2))  # --force's new result
    assert store.read(SPEC.key)["attempt"] == 2


KEY = {"key": SPEC.key}


@pytest.mark.parametrize("record, problem", [
    ({"status": "finished", "spec": {}, **KEY}, "spec method is"),
    ({"status": "finished", **KEY}, "no spec"),
    ({"status": "finished", "spec": SPEC.to_record()}, "its key is None"),
    ({"status": "finished", "spec": SPEC.to_record(), **KEY}, "finished but has no metrics"),
    ({"status": "finished", "spec": SPEC.to_record(), **KEY,
      "metrics": {**METRICS, "test_accuracy": float("nan")}},
     "metric test_accuracy is nan, not a finite number"),
    ({"status": "finished", "spec": SPEC.to_record(), **KEY,
      "metrics": {k: v for k, v in METRICS.items() if k != "artifact_bytes"}},
     "metric 'artifact_bytes' is missing"),
])
def test_records_that_cannot_be_used_are_unreadable(tmp_path, record, problem):
    path = RunStore(tmp_path).record_path(SPEC.key)
    path.parent.mkdir()
    path.write_text(json.dumps(record))
    with pytest.raises(UnreadableRecord, match=problem):
        RunStore(tmp_path).read(SPEC.key)


def test_temporary_names_are_unique_per_write(tmp_path):
    from bench.fsutil import temporary_path

    names = {temporary_path(tmp_path / "x.ckpt").name for _ in range(100)}
    assert len(names) == 100 and all(n.startswith(".x.ckpt.") and n.endswith(".tmp")
                                     for n in names)
