import pytest
import torch


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _wandb_disabled_in_process(monkeypatch) -> None:
    """In-process CLI runs log to a disabled W&B; the subprocess tests of tracking set offline."""
    monkeypatch.setenv("WANDB_MODE", "disabled")
