"""Issue 18: which errors the CLI turns into one line, and --debug."""

import pytest

import eirnn_fast.cli as cli
from eirnn_fast.cli import CLIError, main


@pytest.fixture
def handler(monkeypatch):
    """Replace the `info` command's handler by ``fn`` (an error raised where a real command would)."""

    def install(fn):
        parser = cli.build_parser()
        parser._subparsers._group_actions[0].choices["info"].set_defaults(func=fn)
        monkeypatch.setattr(cli, "build_parser", lambda: parser)

    monkeypatch.delenv("EIRNN_FAST_DEBUG", raising=False)
    return install


def _validation_error(args):
    from eirnn_fast.train.config import protocol_fields

    protocol_fields("theirs")  # a ValueError raised on purpose by the package: the user's


def _bug_in_python(args):
    return int("not a number")  # ValueError from inside Python: a bug, not a user error


def _bug_wrong_call(args):
    return len(3)  # TypeError from inside Python


def test_a_package_validation_error_is_one_line(handler, capsys):
    handler(_validation_error)
    assert main(["info"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["eirnn-fast info: error: protocol must be one of ('ours', 'predecessor'), got 'theirs'"]


@pytest.mark.parametrize("fn, exc", [(_bug_in_python, ValueError), (_bug_wrong_call, TypeError)])
def test_a_real_bug_keeps_its_traceback(handler, fn, exc):
    handler(fn)
    with pytest.raises(exc):
        main(["info"])


def test_a_missing_file_is_one_line_without_errno(handler, capsys, tmp_path):
    def read(args):
        return open(tmp_path / "absent.yaml").read()

    handler(read)
    assert main(["info"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("eirnn-fast info: error: No such file or directory: ") and "[Errno" not in err


@pytest.mark.parametrize(
    "argv",
    [["--debug", "info"], ["info", "--debug"]],
)
def test_debug_flag_shows_the_traceback_before_or_after_the_command(handler, argv):
    handler(_validation_error)
    with pytest.raises(ValueError, match="protocol must be one of"):
        main(argv)


def test_debug_flag_reraises_argument_errors(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("EIRNN_FAST_DEBUG", raising=False)
    with pytest.raises(CLIError, match="--extent"):
        main(["flyvis", "generate", "--out-dir", "x", "--extent", "0", "--debug"])
    assert not (tmp_path / "x").exists()


def test_debug_is_not_an_unknown_argument(handler, capsys):
    handler(lambda args: 0)
    assert main(["info", "--debug"]) == 0
    assert capsys.readouterr().err == ""
