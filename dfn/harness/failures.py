"""How a failed ``python -m dfn`` command ends: one line and an exit status, or a traceback.

* A user's mistake (the command line, a config value, an input file, a checkpoint):
  ``dfn: error: ...`` naming the key or file and the fix, status 2. dfn raises
  :class:`~dfn.errors.ConfigError` for all of its own; jsonargparse's ``ArgumentError`` and a
  library's ``FileNotFoundError`` count too, also when wrapped in another exception.
* A fault of the run, not of its inputs (a full or read-only disk, a NaN loss, another process of
  a distributed run that died): ``dfn: error: ...``, status 1.
* A requested stop (SIGTERM, Ctrl-C) after ``last.ckpt`` was saved: ``dfn: stopped ...``,
  status 128 + the signal.
* Anything else is a bug: its traceback is kept.
"""
from __future__ import annotations

import errno
import re
from pathlib import Path
from typing import Optional

import torch
import yaml
from jsonargparse import ArgumentError
from lightning.fabric.utilities.exceptions import MisconfigurationException

from dfn.callbacks import NonFiniteLoss
from dfn.errors import ConfigError
from dfn.harness.signals import Stopped

USER_ERRORS = (ConfigError, ArgumentError, FileNotFoundError, NonFiniteLoss, MisconfigurationException)
WRITE_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EDQUOT}


def explain(error: BaseException) -> Optional[tuple[str, int]]:
    """``(line, exit status)`` for an error that ends a command in one line, else ``None``."""
    if isinstance(error, Stopped):
        return f"dfn: {error}", error.status
    cause = _user_error(error)
    if cause is None and _peer_died(error):
        reason = re.sub(r"^\[[^\]]*\]\s*", "", str(error).strip().splitlines()[-1]).split(". ")[0]
        return (f"dfn: error: another process of this distributed run died ({reason}); every checkpoint "
                "already written is intact: see that process's output for why, then resume with "
                "--ckpt_path last"), 1
    if cause is None:
        reason = _union_reason(error)
        return None if reason is None else (f"dfn: error: {reason}", 2)
    if isinstance(cause, OSError) and cause.errno in WRITE_ERRNOS:
        return (f"dfn: error: cannot write {cause.filename or 'an output file'}: {cause.strerror}. Free "
                "disk space or choose another --run_dir; every checkpoint already written is intact "
                "(each is written beside its final name, then renamed)."), 1
    message = trainer_setting(str(cause)) if isinstance(cause, MisconfigurationException) else str(cause)
    if "Original Traceback" in message:        # raised in a DataLoader worker: its last line is the error
        message = message.strip().splitlines()[-1].split(": ", 1)[-1]
    return f"dfn: error: {message}", 1 if isinstance(cause, NonFiniteLoss) else 2


def wandb_setting(refused: Exception) -> str:
    """W&B's refusal of a logger setting as one line led by the option: pydantic's report names the
    setting on a line of its own, wandb's own errors are one sentence."""
    details = refused.errors() if callable(getattr(refused, "errors", None)) else None
    if details:
        setting, reason = details[0]["loc"][0], details[0]["msg"].removeprefix("Value error, ")
    else:
        setting, reason = None, " ".join(str(refused).split())
    key = "--trainer.logger.init_args" + (f".{setting}" if setting else "")
    lead = f"{key}: W&B refused it: "
    return lead + shortened(reason, 220 - len(lead))


def shortened(message: str, limit: int = 200) -> str:
    """``message`` on one line, cut after the last whole sentence that fits in ``limit``."""
    sentences = re.split(r"(?<=[.!?]) ", " ".join(message.split()))
    kept = sentences[0]
    for sentence in sentences[1:]:
        if len(kept) + len(sentence) + 1 > limit:
            break
        kept += " " + sentence
    return kept


def trainer_setting(message: str) -> str:
    """Lightning's refusal of a trainer setting, led by the option the user typed, shortened:
    "`Trainer(devices='0')` value is not ..." -> "--trainer.devices: `Trainer(devices='0')` ..."."""
    named = re.search(r"`(?:Trainer\()?(\w+)=", message)
    key = "max_time" if "`Timer(duration=" in message else named.group(1) if named else None
    kept = shortened(message)
    return f"--trainer.{key}: {kept}" if key else kept


def readable_parse_error(message: str) -> str:
    """jsonargparse's account of a value no type of a Union accepts (a dump of every subtype and
    its error, nested once per ``class_path``), cut to the option the user typed, the value and
    what it accepts: ``--model.init_args.optimizer.init_args.lr abc: expected a float``."""
    message = re.sub(r"^Unrecognized arguments:", "unrecognized arguments:", message)   # jsonargparse 4.39's case
    simple = re.match(r"""Parser key "([^"]+)": Expected a <class '([\w.]+)'>\. Got value: (.*)$""", message)
    if simple:
        return f"--{simple.group(1)} {simple.group(3)}: expected {article(simple.group(2))}"
    if "Does not validate against any of the Union subtypes" not in message:
        return message
    keys = re.findall(r'Parser key "([^"]+)"', message)
    if "Given value type: <class 'dict'>" in message and "'class_path'" not in message.split("Given value:")[-1]:
        return (f"--{keys[0]}: init_args without a class_path; a config that extends another goes after it "
                "(--config configs/stereo.yaml --config configs/stereo_binocular.yaml)")
    nested = re.findall(r"NestedArg\(key='([^']+)', val='([^']*)'\)", message)
    if nested:
        option, value = f"{keys[0]}.init_args.{nested[0][0]}", nested[0][1]
    else:
        given = re.search(r"Given value: (.*?)(?: - |$| \(all options)", message)
        option, value = keys[0], given.group(1).strip() if given else None
    unknown = re.search(r"unrecognized arguments: --([\w.]+)", message)
    if unknown:
        return f"unrecognized arguments: --{keys[0]}.init_args.{unknown.group(1)}"
    innermost = message[message.rfind('Parser key "'):] if len(keys) > 1 else message
    expected, literals = [], []
    for kind in re.findall(r"Expected a (<class '[\w.]+'>|typing\.Literal\[[^\]]*\])", innermost):
        if kind.startswith("typing.Literal"):
            literals += [v.strip().strip("'") for v in kind[len("typing.Literal["):-1].split(",")]
        elif kind not in ("<class 'NoneType'>", "<class 'torch.Tensor'>"):
            expected.append(kind[len("<class '"):-2])
    accepted = [article(name) for name in dict.fromkeys(expected)]
    if literals:
        accepted.append("one of " + ", ".join(dict.fromkeys(literals)))
    what = " or ".join(accepted) if accepted else "another value"
    return f"--{option}{'' if value is None else ' ' + value}: expected {what}"


def article(name: str) -> str:
    """``"int"`` -> ``"an int"``, ``"float"`` -> ``"a float"``."""
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name}"


def check_config_files(argv: list[str]) -> None:
    """A missing config file, or the file of a YAML syntax error (jsonargparse reports it without
    the file name), as one line with the fix."""
    for flag, value in zip(argv, argv[1:] + [""]):
        path = Path(value if flag in ("--config", "-c") else flag.partition("=")[2]
                    if flag.startswith("--config=") else "")
        if path.name and not path.exists():
            raise ConfigError(f"--config {path}: no such file; the experiments' configs are in the "
                              "repository's configs/ folder (e.g. configs/steerable.yaml)")
        if path.name and path.is_file():
            try:
                yaml.safe_load(path.read_text())
            except yaml.YAMLError as error:
                mark = getattr(error, "problem_mark", None)
                where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
                problem = getattr(error, "problem", None) or error
                raise ConfigError(f"{path}: not valid YAML ({problem}{where}); fix the file") from error


def _union_reason(error: BaseException) -> Optional[str]:
    """The one reason in jsonargparse's Union report of a class it could not build, where the
    report does not chain the error it lists (jsonargparse 4.39: a model's ConfigError arrives as
    text only), or ``None``."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        text = " ".join(str(error).split())
        if isinstance(error, ValueError) and text.startswith("Does not validate against any of the Union subtypes"):
            listed = text.partition(" Errors: - ")[2].partition(" Given value type:")[0].split(" - ")
            reasons = [r for r in listed if r and not r.startswith("Expected a <class 'NoneType'>")]
            return reasons[0] if len(reasons) == 1 else None
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


def _user_error(error: BaseException) -> Optional[BaseException]:
    """The user's mistake or the write fault behind ``error`` (jsonargparse wraps those raised
    while it instantiates classes), or ``None``."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, USER_ERRORS) or (isinstance(error, OSError) and error.errno in WRITE_ERRNOS):
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


def _peer_died(error: BaseException) -> bool:
    """A collective failed because another rank is gone (gloo: its connection closed or reset by
    the peer; NCCL and the c10d store: a ``DistError``)."""
    distributed_error = getattr(torch.distributed, "DistError", ())
    return isinstance(error, distributed_error) or any(
        sign in str(error) for sign in ("remote worker", "Connection closed by peer", "Connection reset by peer"))
