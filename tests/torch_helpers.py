"""Shared by the PyTorch tests (test_torch.py, test_torch_arm.py): skip or fail without the
[torch] extra, a conversion cache shared by the session, small user models written to disk."""
from __future__ import annotations

import os
import sys
import textwrap
from pathlib import Path

import pytest

BUILTIN = "builtin:digits-torch"


def require_torch() -> None:
    """Skip without torch + litert-torch, but fail on CI (.ci/run installs the [torch] extra)."""
    import importlib.util
    missing = [m for m in ("torch", "litert_torch") if importlib.util.find_spec(m) is None]
    if missing:
        msg = f"needs {', '.join(missing)}: pip install -e '.[torch]'"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)


def write_local_fleet(path: Path) -> Path:
    (path / "local-workdir").mkdir(parents=True, exist_ok=True)
    cfg = path / "devices.yaml"
    cfg.write_text(f"version: 1\ndevices:\n  local:\n    transport: local\n"
                   f"    workdir: {path / 'local-workdir'}\n")
    return cfg


#: a module of factories (`usermodels:NAME`) as a user would write them
USER_MODELS = textwrap.dedent('''
    import torch
    from torch import nn


    class Small(nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(7)
            self.conv = nn.Conv2d(3, 8, 3, padding=1)
            self.fc = nn.Linear(8 * 6 * 6, 5)

        def forward(self, x):
            return self.fc(torch.relu(self.conv(x)).flatten(1))


    def small():
        return Small().eval(), (torch.rand(1, 3, 6, 6),)


    class Histc(nn.Module):
        def forward(self, x):
            return torch.histc(x, bins=4)


    def unsupported():
        return Histc(), (torch.rand(1, 8),)


    def wrong_inputs():
        return nn.Linear(64, 10), (torch.rand(1, 32),)


    def raises():
        raise ValueError("checkpoint weights.pt not found")


    def not_a_pair():
        return nn.Linear(4, 2)


    class Branchy(nn.Module):
        def forward(self, x):
            if x.sum() > 0:
                return x * 2
            return x


    def data_dependent():
        return Branchy(), (torch.rand(1, 4),)


    class TwoHeads(nn.Module):
        """Two inputs of one shape (a swap would show), two outputs (logits, a sigmoid)."""
        def __init__(self, k=2.0):
            super().__init__()
            torch.manual_seed(5)
            self.k = k
            self.a, self.b = nn.Linear(4, 16), nn.Linear(4, 16)
            self.cls, self.reg = nn.Linear(16, 3), nn.Linear(16, 2)

        def forward(self, x, z):
            h = torch.relu(self.a(x) - self.k * self.b(z))
            return self.cls(h), torch.sigmoid(self.reg(h))


    def two_in_two_out():
        return TwoHeads().eval(), (torch.rand(1, 4), torch.rand(1, 4))


    def int_constant():  # `2 * x`: PT2E observes the 2 as an int64 tensor
        return TwoHeads(k=2).eval(), (torch.rand(1, 4), torch.rand(1, 4))


    def qat_prepared():  # eager-mode QAT (PT2E QAT models: test_torch_qat.py)
        from torch.ao.quantization import FakeQuantize
        return nn.Sequential(FakeQuantize(), nn.Linear(4, 2)), (torch.rand(1, 4),)
''')


def write_user_models(folder: Path) -> Path:
    path = folder / "usermodels.py"
    path.write_text(USER_MODELS)
    return path


@pytest.fixture
def env(torch_cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A clean working folder (cwd, on sys.path for factories, with usermodels.py) with a
    local-only fleet; conversions cached for the session."""
    monkeypatch.setenv("EDGE_BENCH_CACHE", str(torch_cache))
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    write_user_models(tmp_path)
    sys.modules.pop("usermodels", None)
    return write_local_fleet(tmp_path)


@pytest.fixture(scope="session")
def torch_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One conversion cache (EDGE_BENCH_CACHE) for every PyTorch test of the session."""
    return tmp_path_factory.mktemp("torch-cache")
