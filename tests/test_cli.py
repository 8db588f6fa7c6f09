import pytest

from rnnlab.cli import main


def test_unknown_experiment_is_one_line_and_status_2(capsys):
    assert main(["reproduce", "no-such-thing"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown experiment" in err[0]


def test_argparse_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["no-such-command"])
    assert exc.value.code == 2
