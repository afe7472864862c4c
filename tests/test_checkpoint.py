"""Checkpoints: published format both ways, safe loading, atomic saving."""

from __future__ import annotations

import errno
import os
import pickle
import queue
import shutil
import subprocess
import sys
import textwrap
import threading
import types
import zipfile
from collections import OrderedDict
from pathlib import Path, PurePath

import pytest
import torch

from core import checkpoint as ck
from core import checkpoint_reading, checkpoint_validation
from core.checkpoint import (
    CheckpointError,
    build_payload,
    load_checkpoint,
    load_model,
    read_info,
    save_checkpoint,
)
from core.model import LandauerLLM

REPO = Path(__file__).resolve().parents[1]
ITOS = list("\n !,.?abcdefghij")


def tiny_model(seed: int = 0, hidden: int = 8) -> LandauerLLM:
    torch.manual_seed(seed)
    return LandauerLLM(len(ITOS), 4, hidden, 2, 2.0)


def adam_like_state(model: LandauerLLM) -> dict:
    """``torch.optim.Adam.state_dict()``'s layout after one step (built by hand: creating an
    optimiser costs seconds of imports, and the layout is what matters here)."""
    params = list(model.parameters())
    return {
        "state": {i: {"step": torch.tensor(1.0), "exp_avg": torch.randn_like(p),
                      "exp_avg_sq": torch.rand_like(p)} for i, p in enumerate(params)},
        "param_groups": [{"lr": 3e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0,
                          "amsgrad": False, "maximize": False, "foreach": None, "capturable": False,
                          "differentiable": False, "fused": None, "params": list(range(len(params)))}],
    }


def trainer_extras(model: LandauerLLM, step: int = 7) -> dict:
    """Extras shaped like the trainer's: optimiser and RNG state, config, metrics, corpus."""
    gen = torch.Generator().manual_seed(1337)
    return {
        "step": step,
        "optimizer_state": adam_like_state(model),
        "rng": {"batch": gen.get_state(), "torch": torch.get_rng_state()},
        "train_config": {"data_path": Path("data") / "corpus.txt", "lr": 3e-3, "seed": 1337},
        "metrics": {"train": {"loss": 2.5, "content": 2.4, "energy": 0.01},
                    "val": {"loss": 2.75, "content": 2.7, "energy": 0.02}},
        "corpus": {"path": Path("data/corpus.txt"), "sha256": "ab" * 32, "chars": 1234},
    }


def published_args() -> dict:
    return {"data_path": Path("data") / "corpus.txt", "save_dir": Path("saved_models"),
            "batch_size": 32, "lr": 3e-3, "device": "cpu"}


def save_tiny(path: Path, seed: int = 0, step: int = 7) -> Path:
    model = tiny_model(seed)
    return save_checkpoint(path, build_payload(model, ITOS, published_args(), trainer_extras(model, step)))


def assert_same(a, b):
    """Deep equality with exact tensor comparison."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    elif isinstance(a, dict):
        assert isinstance(b, dict) and list(a) == list(b)
        for k in a:
            assert_same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            assert_same(x, y)
    else:
        assert a == b or (a != a and b != b), (a, b)


def walk(value):
    yield value
    if isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from walk(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from walk(v)


# --------------------------------------------------------------------------- round trip


def test_round_trip_gives_identical_tensors_and_a_ready_model(tmp_path):
    model = tiny_model()
    extras = trainer_extras(model)
    payload = build_payload(model, ITOS, published_args(), extras)
    path = save_checkpoint(tmp_path / "landauer_llm_step7.pth", payload)

    loaded = load_checkpoint(path)
    assert_same(payload, loaded)
    assert_same(model.state_dict(), loaded["model_state"])
    assert_same(extras["optimizer_state"], loaded["landauer_studio"]["optimizer_state"])
    assert loaded["landauer_studio"]["format_version"] == 1

    restored, itos, info = load_model(path)
    assert not restored.training
    assert itos == dict(enumerate(ITOS))
    idx = torch.randint(0, len(ITOS), (3, 9))
    with torch.no_grad():  # the per-step path: no scan kernels to compile in a unit test
        assert torch.equal(model.forward_reference(idx)[0], restored.forward_reference(idx)[0])
    logits, state = restored.step(idx[:, 0], restored.init_state(3))
    assert logits.shape == (3, len(ITOS)) and state.shape == (2, 3, 8)
    assert (info.step, info.train_loss, info.val_loss) == (7, 2.5, 2.75)
    assert not info.is_original_format
    assert info.num_parameters == model.num_parameters()
    assert info.file_size == path.stat().st_size
    assert info.train_config["data_path"] == str(Path("data") / "corpus.txt")
    assert info.config == model.config.to_dict()


def test_payload_opens_with_the_plain_safe_loader_and_holds_no_paths(tmp_path):
    path = save_tiny(tmp_path / "ck.pth")
    raw = torch.load(path, weights_only=True)  # what the original generate.py does on PyTorch >= 2.6
    assert list(raw)[:4] == ["model_state", "config", "args", "itos"]
    assert raw["config"] == {"vocab_size": len(ITOS), "embed_dim": 4, "hidden_dim": 8,
                             "num_layers": 2, "phase_scaling": 2.0}
    assert type(raw["config"]["phase_scaling"]) is float
    assert raw["itos"] == dict(enumerate(ITOS))
    assert raw["args"]["data_path"] == str(Path("data") / "corpus.txt")
    assert not [v for v in walk(raw) if isinstance(v, PurePath)]
    with zipfile.ZipFile(path) as zf:
        pkl = zf.read(next(n for n in zf.namelist() if n.endswith("data.pkl")))
    assert b"pathlib" not in pkl


def test_gpu_side_values_are_tidied_into_plain_ones():
    np = pytest.importorskip("numpy")
    model = tiny_model()
    payload = build_payload(model, dict(enumerate(ITOS)), {"lr": np.float64(0.5), "n": np.int64(3)},
                            {"corpus": types.MappingProxyType({"p": Path("x")})})
    assert type(payload["args"]["lr"]) is float and type(payload["args"]["n"]) is int
    assert payload["landauer_studio"]["corpus"] == {"p": "x"}


@pytest.mark.parametrize("bad", [object(), frozenset({1}), range(3), types.SimpleNamespace(a=1)],
                         ids=["object", "frozenset", "range", "namespace"])
def test_build_payload_refuses_values_the_safe_loader_cannot_read(bad):
    model = tiny_model()
    with pytest.raises(CheckpointError, match=r"landauer_studio\['metrics'\]\['odd'\].*safe loader"):
        build_payload(model, ITOS, {}, {"metrics": {"odd": bad}})
    with pytest.raises(CheckpointError, match=r"args\['x'\]"):
        build_payload(model, ITOS, {"x": [bad]}, None)


def test_every_accepted_type_really_survives_the_safe_loader(tmp_path):
    values = {"none": None, "bool": True, "int": -3, "float": float("nan"), "str": "é", "bytes": b"\x00",
              "dtype": torch.bfloat16, "device": torch.device("cpu"), "size": torch.Size([2, 3]),
              "od": OrderedDict(a=1), "list": [1, (2, 3)], "param": torch.nn.Parameter(torch.ones(2)),
              "int_keys": {0: "a", (1, 2): "b"}}
    model = tiny_model()
    path = save_checkpoint(tmp_path / "ck.pth", build_payload(model, ITOS, {}, {"values": values}))
    assert_same(values, torch.load(path, weights_only=True)["landauer_studio"]["values"])


@pytest.mark.parametrize("layers", [1, 3])
def test_expected_shapes_match_the_model(layers):
    model = LandauerLLM(7, 5, 6, layers, 1.5)
    want = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert checkpoint_validation.expected_shapes(model.config.to_dict()) == want


def test_build_payload_checks_vocabulary_against_the_model():
    with pytest.raises(CheckpointError, match="vocab_size is 16"):
        build_payload(tiny_model(), ITOS[:-1], {}, None)


# --------------------------------------------------------------------------- original files


def test_golden_original_checkpoint_loads_and_runs(golden_dir, tmp_path):
    model, itos, info = load_model(golden_dir / "reference_format_tiny.pth")
    assert info.is_original_format and info.vocab_size == 65 == len(itos)
    assert info.args["data_path"] == "tiny_shakespeare.txt" and info.args["save_dir"] == "saved_models"
    assert info.step == 20  # from the archive's folder name: the file was renamed
    stoi = {ch: i for i, ch in itos.items()}
    idx = torch.tensor([[stoi[c] for c in "First Citizen:"]])
    with torch.no_grad():
        logits, trace, h_last = model.forward_reference(idx)
    assert logits.shape == (1, 14, 65) and torch.isfinite(logits).all()
    renamed = shutil.copy(golden_dir / "reference_format_tiny.pth", tmp_path / "landauer_llm_step500.pth")
    assert read_info(renamed).step == 500


def foreign_pickle_module(module: str, cls: str):
    """A pickle module whose Pickler writes ``ForeignPath`` values as ``GLOBAL module cls``.

    Lets Linux write exactly what pickle writes on Windows (or on Python 3.13),
    where the class itself cannot be instantiated or does not exist here.
    """

    class Foreign(pickle._Pickler):
        def reducer_override(self, obj):
            if isinstance(obj, ForeignPath):
                return ForeignGlobal, obj.parts
            return NotImplemented

        def save_global(self, obj, name=None):
            if obj is ForeignGlobal:
                self.write(pickle.GLOBAL + f"{module}\n{cls}\n".encode())
                self.memoize(obj)
            else:
                super().save_global(obj, name)

    class ForeignGlobal:
        pass

    return types.SimpleNamespace(Pickler=Foreign, __name__="foreign_pickle")


class ForeignPath:
    def __init__(self, *parts):
        self.parts = parts


@pytest.mark.parametrize("module", ["pathlib", "pathlib._local"])
@pytest.mark.parametrize("cls, parts, expected", [
    ("WindowsPath", ("C:\\", "Users", "author", "tiny_shakespeare.txt"),
     "C:\\Users\\author\\tiny_shakespeare.txt"),
    ("PureWindowsPath", ("saved_models",), "saved_models"),
    ("PosixPath", ("/", "home", "author", "tiny.txt"), "/home/author/tiny.txt"),
    ("PurePosixPath", ("data", "x.txt"), "data/x.txt"),
])
def test_foreign_pathlib_values_in_args_load_as_str(tmp_path, module, cls, parts, expected):
    payload = build_payload(tiny_model(), ITOS, {"batch_size": 32}, None)
    payload["args"]["data_path"] = ForeignPath(*parts)
    path = tmp_path / "landauer_llm_step20.pth"
    torch.save(payload, path, pickle_module=foreign_pickle_module(module, cls))
    with zipfile.ZipFile(path) as zf:
        pkl = zf.read(next(n for n in zf.namelist() if n.endswith("data.pkl")))
    assert f"c{module}\n{cls}\n".encode() in pkl
    with pytest.raises(pickle.UnpicklingError, match=f"{module}.{cls}"):
        torch.load(path, weights_only=True)  # the unaided safe loader refuses it

    args = load_checkpoint(path)["args"]
    assert args == {"batch_size": 32, "data_path": expected}
    assert type(args["data_path"]) is str


def test_native_path_written_by_torch_save_loads_as_str(tmp_path):
    payload = build_payload(tiny_model(), ITOS, {}, None)
    payload["args"] = {"data_path": Path("data", "tiny.txt").absolute()}
    torch.save(payload, tmp_path / "ck.pth")
    assert load_checkpoint(tmp_path / "ck.pth")["args"]["data_path"] == str(Path("data", "tiny.txt").absolute())


def test_concurrent_loads_keep_their_path_mapping(golden_dir):
    errors = []

    def worker():
        try:
            for _ in range(15):
                assert load_checkpoint(golden_dir / "reference_format_tiny.pth")["args"]["save_dir"] == "saved_models"
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert not [g for g in torch.serialization.get_safe_globals() if isinstance(g, tuple)]


# --------------------------------------------------------------------------- hostile files


class RunsCode:
    def __init__(self, func, arg):
        self.func, self.arg = func, arg

    def __reduce__(self):
        return self.func, (self.arg,)


@pytest.mark.filterwarnings("ignore:Detected pickle protocol 4")
@pytest.mark.parametrize("protocol", [2, 4])
@pytest.mark.parametrize("kind", ["os.system", "builtins.exec"])
def test_hostile_pickle_is_refused_and_runs_nothing(tmp_path, kind, protocol):
    marker = tmp_path / "marker"
    if kind == "os.system":
        evil, name = RunsCode(os.system, f'touch "{marker}"'), f"{os.system.__module__}.system"
    else:
        evil, name = RunsCode(exec, f"open({str(marker)!r}, 'w').close()"), "builtins.exec"
    payload = build_payload(tiny_model(), ITOS, {"lr": 0.1}, None)
    payload["args"]["data_path"] = evil
    path = tmp_path / "evil.pth"
    torch.save(payload, path, pickle_protocol=protocol)
    with zipfile.ZipFile(path) as zf:
        pkl = zf.read(next(n for n in zf.namelist() if n.endswith("data.pkl")))
    assert name in checkpoint_reading.pickle_globals(pkl)  # the file really calls it when fully unpickled

    with pytest.raises(CheckpointError) as err:
        load_checkpoint(path)
    assert name in str(err.value) and str(path) in str(err.value)
    assert "weights_only=False" not in str(err.value)
    with pytest.raises(CheckpointError):
        read_info(path)
    assert not marker.exists()


# --------------------------------------------------------------------------- damaged files


def _write(path: Path, data) -> Path:
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        torch.save(data, path)
    return path


def _state(hidden=8):
    return tiny_model(hidden=hidden).state_dict()


def _published(**over):
    payload = {"model_state": _state(), "config": {"vocab_size": len(ITOS), "embed_dim": 4, "hidden_dim": 8,
                                                   "num_layers": 2, "phase_scaling": 2.0},
               "args": {}, "itos": dict(enumerate(ITOS))}
    payload.update(over)
    return payload


@pytest.mark.parametrize("make, needle", [
    (lambda p: p, "does not exist"),
    (lambda p: (p.mkdir(), p)[1], "is a folder"),
    (lambda p: _write(p, b""), "empty"),
    (lambda p: _write(p, b"hello, this is a text file\n"), "not a PyTorch checkpoint"),
    (lambda p: _write(p, bytes(range(256)) * 8), "not a PyTorch checkpoint"),
    (lambda p: _write(p, save_tiny(p.with_suffix(".full")).read_bytes()[:3000]), "incomplete or damaged"),
    (lambda p: (zipfile.ZipFile(p, "w").writestr("notes.txt", "hi"), p)[1], "not a PyTorch checkpoint"),
    (lambda p: _write(p, [1, 2, 3]), "not a checkpoint dict"),
    (lambda p: _write(p, _state()), "bare state dict"),
    (lambda p: _write(p, {k: v for k, v in _published().items() if k != "config"}), "lacks 'config'"),
    (lambda p: _write(p, _published(config={"vocab_size": 16})), "lacks embed_dim"),
    (lambda p: _write(p, _published(model_state=_state(hidden=16))), "needs"),
    (lambda p: _write(p, _published(itos=dict(enumerate(ITOS[:-2])))), "vocab_size is 16"),
    (lambda p: _write(p, _published(itos=dict(enumerate("a" * 16)))), "twice"),
], ids=["missing", "folder", "empty", "text", "random", "truncated", "other-zip", "list", "state-dict",
        "no-config", "config-keys", "shapes", "itos-size", "itos-dupes"])
def test_damaged_or_foreign_files_give_clear_errors(tmp_path, make, needle):
    path = make(tmp_path / "ck.pth")
    with pytest.raises(CheckpointError, match=needle) as err:
        load_model(path)
    assert str(path) in str(err.value)


# --------------------------------------------------------------------------- atomic saving


class FailingWriter:
    """Wraps the real temp file and fails like a full disk after ``limit`` bytes."""

    def __init__(self, f, limit: int, code: int):
        self.f, self.limit, self.code, self.written = f, limit, code, 0

    def write(self, data):
        n = memoryview(data).nbytes
        if self.written + n > self.limit:
            raise OSError(self.code, os.strerror(self.code))
        self.written += n
        return self.f.write(data)

    def flush(self):
        self.f.flush()

    def fileno(self):
        return self.f.fileno()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()


@pytest.mark.parametrize("code, needle", [(errno.ENOSPC, "Disk full while saving"),
                                          (errno.EACCES, "No permission")])
def test_failed_save_keeps_the_old_file_and_leaves_no_temp(tmp_path, monkeypatch, code, needle):
    target = save_tiny(tmp_path / "landauer_llm_step7.pth", seed=0, step=7)
    before = target.read_bytes()
    real = ck._open_writer
    monkeypatch.setattr(ck, "_open_writer", lambda fd: FailingWriter(real(fd), len(before) // 2, code))

    model = tiny_model(seed=1)
    with pytest.raises(CheckpointError, match=needle) as err:
        save_checkpoint(target, build_payload(model, ITOS, {}, trainer_extras(model, 8)))
    assert str(target) in str(err.value)
    assert target.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == [target.name]
    assert load_checkpoint(target)["landauer_studio"]["step"] == 7


def test_save_syncs_the_file_before_renaming_and_the_folder_after(tmp_path, monkeypatch):
    import stat

    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append("fsync-dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "fsync-file")
        real_fsync(fd)

    def replace(src, dst):
        events.append("replace")
        assert Path(src).parent == Path(dst).parent and Path(src).name.startswith(".")
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    save_tiny(tmp_path / "ck.pth")
    want = ["fsync-file", "replace"] + (["fsync-dir"] if os.name != "nt" else [])
    assert events == want


KILL_CHILD = textwrap.dedent("""
    import sys
    from core import checkpoint as ck
    from core.model import LandauerLLM

    class PausingWriter:  # stops halfway through each save until the parent says go (or kills us)
        def __init__(self, f, step):
            self.f, self.step, self.written, self.paused = f, step, 0, False
        def write(self, data):
            n = self.f.write(data)
            self.written += n
            if not self.paused and self.written > 1 << 20:
                self.paused = True
                self.f.flush()
                print("halfway", self.step, flush=True)
                sys.stdin.readline()
            return n
        def flush(self):
            self.f.flush()
        def fileno(self):
            return self.f.fileno()
        def __enter__(self):
            return self
        def __exit__(self, *exc):
            self.f.close()

    real = ck._open_writer
    model = LandauerLLM(16, 4, 700, 2, 2.0)  # about 2 MB of weights
    for step in (1, 2):
        ck._open_writer = lambda fd: PausingWriter(real(fd), step)
        for t in model.state_dict().values():
            t.fill_(step)
        ck.save_checkpoint(sys.argv[1], ck.build_payload(model, list(sys.argv[2]), {}, {"step": step}))
        print("saved", step, flush=True)
""")


def _assert_complete(path: Path) -> int:
    """The step of the checkpoint at ``path``, after checking every weight is from that save."""
    payload = load_checkpoint(path)
    step = payload["landauer_studio"]["step"]
    assert all(bool((t == step).all()) for t in payload["model_state"].values())
    return step


def test_killed_save_leaves_the_old_or_the_new_complete_file(tmp_path):
    target = tmp_path / "landauer_llm_step1.pth"
    model = LandauerLLM(len(ITOS), 4, 700, 2, 2.0)
    for t in model.state_dict().values():
        t.fill_(0)
    save_checkpoint(target, build_payload(model, ITOS, {}, {"step": 0}))
    script = tmp_path / "child.py"
    script.write_text(KILL_CHILD, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen([sys.executable, str(script), str(target), "".join(ITOS)], cwd=REPO, env=env,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(x.strip()) for x in proc.stdout], daemon=True).start()

    def expect(line: str) -> None:
        try:
            got = lines.get(timeout=120)
        except queue.Empty:
            got = None
        assert got == line, proc.stderr.read() if proc.poll() is not None else got

    def temps() -> list[Path]:
        return [p for p in tmp_path.iterdir() if p.name.startswith(".")]

    try:
        expect("halfway 1")  # first save half written: the target is still the complete old file
        assert temps() and _assert_complete(target) == 0
        proc.stdin.write("go\n")
        proc.stdin.flush()
        expect("saved 1")
        expect("halfway 2")
        proc.kill()  # SIGKILL where available: no cleanup runs
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    full = target.stat().st_size
    leftovers = temps()
    assert leftovers and all(0 < p.stat().st_size < full for p in leftovers)  # really killed mid-write
    assert _assert_complete(target) == 1
    save_checkpoint(target, build_payload(model, ITOS, {}, {"step": 0}))  # the litter is cleaned up
    assert _assert_complete(target) == 0
    assert not temps()


# --------------------------------------------------------------------------- sizes, damage, values


def _cut_at(src: Path, dst: Path, n: int) -> Path:
    dst.write_bytes(src.read_bytes()[:n])
    return dst


def test_truncated_files_say_they_end_early_at_every_offset(tmp_path):
    full = save_tiny(tmp_path / "full.pth")
    size = full.stat().st_size
    for n in (4, 10, 30, 100, 700, size // 3, size // 2, size - 600, size - 100, size - 22, size - 1):
        path = _cut_at(full, tmp_path / f"cut{n}.pth", n)
        with pytest.raises(CheckpointError) as err:
            load_model(path)
        msg = str(err.value)
        assert str(path) in msg and "ends early" in msg and f"truncated at {n:,}" in msg, (n, msg)


def test_truncation_inside_the_weights_names_how_much_is_missing(tmp_path):
    model = LandauerLLM(len(ITOS), 4, 300, 2, 2.0)  # weights of ~0.4 MB after a small pickle
    full = save_checkpoint(tmp_path / "full.pth", build_payload(model, ITOS, {}, None))
    path = _cut_at(full, tmp_path / "cut.pth", 50_000)
    with pytest.raises(CheckpointError, match=r"truncated at 50,000 of at least [\d,]+ bytes"):
        load_checkpoint(path)


def _patch_central_size(path: Path, member_suffix: str, new_size: int) -> None:
    raw = bytearray(path.read_bytes())
    pos = raw.find(b"PK\x01\x02")
    while pos >= 0:
        name_len = int.from_bytes(raw[pos + 28:pos + 30], "little")
        name = bytes(raw[pos + 46:pos + 46 + name_len]).decode()
        if name.endswith(member_suffix):
            raw[pos + 20:pos + 24] = new_size.to_bytes(4, "little")  # compressed size
            raw[pos + 24:pos + 28] = new_size.to_bytes(4, "little")  # uncompressed size
        pos = raw.find(b"PK\x01\x02", pos + 4)
    path.write_bytes(bytes(raw))


def test_archive_claiming_huge_records_is_refused_before_loading(tmp_path, monkeypatch):
    path = save_tiny(tmp_path / "ck.pth")
    _patch_central_size(path, "/data/0", 0xF0000000)  # ~4 GB claimed by a file of kilobytes
    monkeypatch.setattr(torch, "load", lambda *a, **k: pytest.fail("torch.load must not run"))
    with pytest.raises(CheckpointError, match="claims 4,026,531,840 bytes") as err:
        load_checkpoint(path)
    assert str(path) in str(err.value)


HUGE_MODEL_CHILD = textwrap.dedent("""
    import re, resource, sys, time
    from core.checkpoint import CheckpointError, load_model

    def status(key):
        return int(re.search(key + r":\\s+(\\d+)", open("/proc/self/status").read()).group(1)) * 1024

    # from here on the process may grow its address space by 1 GB at most
    limit = status("VmSize") + (1 << 30)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    t0 = time.perf_counter()
    try:
        load_model(sys.argv[1])
    except CheckpointError as exc:
        print("refused", round(time.perf_counter() - t0, 2), exc)
    else:
        print("loaded")
""")


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_tiny_file_declaring_a_huge_model_is_refused_with_bounded_memory(tmp_path):
    """A few KB whose config declares ~2 billion weights (the tensors are expanded views of one
    number) is refused before anything is built, in a process that may grow by 1 GB at most."""
    config = {"vocab_size": 256, "embed_dim": 8192, "hidden_dim": 8192, "num_layers": 32,
              "phase_scaling": 2.0}
    state = {k: torch.zeros(1).expand(shape) for k, shape in checkpoint_validation.expected_shapes(config).items()}
    path = tmp_path / "huge.pth"
    torch.save({"model_state": state, "config": config, "args": {},
                "itos": {i: chr(0x100 + i) for i in range(256)}}, path)
    assert path.stat().st_size < 32_000
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run([sys.executable, "-c", HUGE_MODEL_CHILD, str(path)], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.startswith("refused"), out.stdout
    assert "declares 2," in out.stdout and "parameters but the file holds" in out.stdout
    assert str(path) in out.stdout


def test_expanded_weights_of_the_right_shape_are_refused(tmp_path):
    state = {k: (v if k != "output_head.weight" else torch.zeros(1).expand(v.shape))
             for k, v in _state().items()}
    path = _write(tmp_path / "ck.pth", _published(model_state=state))
    with pytest.raises(CheckpointError, match="output_head.weight has shape .* data holds only 4 bytes"):
        load_checkpoint(path)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused_with_the_tensor_name(tmp_path, bad, capsys):
    state = _state()
    state["rnn.hidden_scale"][1, 3] = bad
    path = _write(tmp_path / "ck.pth", _published(model_state=state))
    with pytest.raises(CheckpointError, match=r"rnn.hidden_scale holds 1 NaN or infinite") as err:
        load_model(path)
    assert str(path) in str(err.value)
    from core.cli import generate_main

    assert generate_main(["--checkpoint", str(path), "--max-new-tokens", "5"]) == 2
    err_text = capsys.readouterr().err
    assert "rnn.hidden_scale" in err_text and "Traceback" not in err_text


@pytest.mark.filterwarnings("ignore:Detected pickle protocol 4")
def test_raw_pickles_are_named_as_such(tmp_path):
    plain4 = tmp_path / "plain4.pkl"
    plain4.write_bytes(pickle.dumps({"config": {"vocab_size": 3}, "itos": ["a"]}, protocol=4))
    with pytest.raises(CheckpointError, match=r"plain Python pickle \(protocol 4\).*FRAME") as err:
        load_checkpoint(plain4)
    assert str(plain4) in str(err.value)
    tensors = tmp_path / "tensors4.pkl"  # pickle's own tensor format re-enters the unsafe loader
    tensors.write_bytes(pickle.dumps(_published(), protocol=4))
    with pytest.raises(CheckpointError, match="torch.storage._load_from_bytes") as err:
        load_checkpoint(tensors)
    assert str(tensors) in str(err.value)
    plain2 = tmp_path / "plain2.pkl"
    plain2.write_bytes(pickle.dumps({"a": 1}, protocol=2))
    with pytest.raises(CheckpointError, match="plain Python pickle") as err:
        load_checkpoint(plain2)
    assert str(plain2) in str(err.value)
    evil = tmp_path / "evil.pkl"
    evil.write_bytes(pickle.dumps({"a": RunsCode(os.system, "true")}, protocol=4))
    with pytest.raises(CheckpointError, match=r"refers to (posix|nt)\.system") as err:
        load_checkpoint(evil)
    assert str(evil) in str(err.value)


@pytest.mark.parametrize("itos", [dict(enumerate(["ab"] + ITOS[1:])), dict(enumerate([""] + ITOS[1:]))])
def test_itos_values_must_be_single_characters(tmp_path, itos):
    path = _write(tmp_path / "ck.pth", _published(itos=itos))
    with pytest.raises(CheckpointError, match="not to one character"):
        load_checkpoint(path)


def test_stale_temps_of_killed_saves_are_removed_but_live_ones_kept(tmp_path):
    import fcntl

    stale = tmp_path / ".landauer_llm_step5.pth.0123abcd.tmp"
    stale.write_bytes(b"half a checkpoint")
    empty = tmp_path / ".landauer_llm_step6.pth.0123abce.tmp"
    empty.write_bytes(b"")  # could be a save that has just begun: kept
    live = tmp_path / ".landauer_llm_step7.pth.0123abcf.tmp"
    live.write_bytes(b"being written")
    other = tmp_path / ".notes.txt.0123abcd.tmp"
    other.write_bytes(b"not ours")
    with open(live, "rb") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)  # another process saving right now
        save_tiny(tmp_path / "landauer_llm_step8.pth")
        assert not stale.exists() and empty.exists() and live.exists() and other.exists()
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == [
        "landauer_llm_step8.pth"]
