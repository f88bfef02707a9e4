"""config.toml's values: each key is checked by the one rule every source of it shares, and a bad value is a
ConfigError naming the file and the key, before anything is opened or changed."""

from __future__ import annotations

import pytest

from vgpu import config, connect
from vgpu.errors import ConfigError, InvalidValue

from .clikit import SpecHost, run


@pytest.fixture
def user_config(isolated_environment):
    path = isolated_environment / "config" / "vgpu" / "config.toml"
    path.parent.mkdir(parents=True)
    return path


def _refusal(path, toml: str) -> str:
    path.write_text(toml)
    with pytest.raises(ConfigError) as caught:
        config.load()
    return str(caught.value)


# --- typed keys: clean_timeout, parallel_hosts -------------------------------------------------------------


@pytest.mark.parametrize(("toml", "shown", "allowed"), [
    ("clean_timeout = -5\n", "-5", "a number of seconds from 0 to 86400"),
    ("clean_timeout = -0.5\n", "-0.5", "a number of seconds from 0 to 86400"),
    ("clean_timeout = nan\n", "nan", "a number of seconds from 0 to 86400"),
    ("clean_timeout = inf\n", "inf", "a number of seconds from 0 to 86400"),
    ("clean_timeout = 86401\n", "86401", "a number of seconds from 0 to 86400"),
    ("parallel_hosts = 0\n", "0", "a whole number of at least 1"),
    ("parallel_hosts = -3\n", "-3", "a whole number of at least 1"),
])
def test_a_typed_value_out_of_range_names_the_file_the_key_and_what_is_allowed(user_config, toml, shown, allowed):
    key = toml.split(" =")[0]
    assert _refusal(user_config, toml) == f"{user_config}: setting {key} = {shown} must be {allowed}"


@pytest.mark.parametrize(("toml", "expected"), [
    ("clean_timeout = 0\n", 0.0), ("clean_timeout = 2.5\n", 2.5), ("clean_timeout = 86400\n", 86400.0),
])
def test_a_clean_timeout_in_range_is_taken_in_seconds(user_config, toml, expected):
    user_config.write_text(toml)
    assert config.load().clean_timeout == expected


@pytest.mark.parametrize(("key", "value", "toml"), [
    ("clean_timeout", -5, "-5"), ("clean_timeout", float("nan"), "nan"), ("clean_timeout", 86401, "86401"),
    ("clean_timeout", 7, "7"), ("clean_timeout", 0.25, "0.25"),
    ("parallel_hosts", 0, "0"), ("parallel_hosts", 3, "3"),
])
def test_a_config_file_and_connect_share_one_rule(user_config, tmp_path, key, value, toml):
    user_config.write_text(f"{key} = {toml}\n")
    try:
        from_file = config.load()
    except ConfigError as refused:
        with pytest.raises(InvalidValue) as raised:
            connect(db=str(tmp_path / "v.db"), **{key: value})
        assert str(refused).endswith(f"must be {raised.value.allowed}")
        return
    user_config.unlink()
    assert getattr(config.load({key: value}), key) == getattr(from_file, key)
    with connect(db=str(tmp_path / "v.db"), **{key: value}) as conn:
        assert getattr(conn.settings, key) == getattr(from_file, key)


def test_a_negative_clean_timeout_in_the_config_stops_no_vm(user_config, tmp_path):
    spec = SpecHost(tmp_path)
    user_config.write_text("clean_timeout = -5\n")
    before = spec.files()
    outcome = spec.cli("set-pool", f"--vm-uuid={spec.uuid('VM-1')}", "--pool=B", stdin="yes\n")
    assert outcome.code == 2 and outcome.out == ""
    assert outcome.one_error_line() == (f"error: {user_config}: setting clean_timeout = -5 must be a number of "
                                        "seconds from 0 to 86400")
    assert spec.files() == before and spec.pool_of("VM-1") == "A"


# --- args_key: a platform key name ---------------------------------------------------------------------------

ARGS_KEY_ALLOWED = "a platform key name such as device-model-args: printable, without spaces, '=' or '/'"
BAD_ARGS_KEYS = ["", " ", "device model args", " device-model-args", "a=b", "platform/args", "tab\there", "é\u200b"]


@pytest.mark.parametrize("key", BAD_ARGS_KEYS)
def test_a_bad_args_key_names_the_file_the_key_and_what_is_allowed(user_config, key):
    user_config.write_text(f"args_key = {key!r}\n".replace("'", '"'))
    assert _refusal(user_config, user_config.read_text()) == (
        f"{user_config}: setting args_key = {key!r} must be {ARGS_KEY_ALLOWED}")


@pytest.mark.parametrize("key", BAD_ARGS_KEYS)
def test_a_hosts_own_bad_args_key_is_refused_by_the_same_rule(user_config, key):
    toml = f'[hosts]\ngpu1 = {{ uri = "xe:", args_key = {key!r} }}\n'.replace("'", '"')
    assert _refusal(user_config, toml) == f"{user_config}: host gpu1: args_key = {key!r} must be {ARGS_KEY_ALLOWED}"


@pytest.mark.parametrize("key", BAD_ARGS_KEYS)
def test_connect_refuses_a_bad_args_key_by_the_same_rule(tmp_path, key):
    with pytest.raises(InvalidValue) as raised:
        connect(db=str(tmp_path / "v.db"), args_key=key)
    assert str(raised.value) == f"invalid args_key {key!r}: expected {ARGS_KEY_ALLOWED}"


@pytest.mark.parametrize("key", ["device-model-args", "device_model_args", "vgpu.args", "x"])
def test_a_platform_key_name_is_taken_from_every_source(user_config, tmp_path, key):
    user_config.write_text(f'args_key = "{key}"\n[hosts]\ngpu1 = {{ uri = "sim:{tmp_path}/h.json", args_key = "{key}" }}\n')
    settings = config.load()
    assert settings.args_key == key and settings.hosts[0].args_key == key
    with connect(db=str(tmp_path / "v.db"), host=f"sim:{tmp_path}/h.json", args_key=key) as conn:
        assert conn.settings.args_key == key


def test_an_empty_args_key_in_the_config_writes_nothing_and_reports_no_state(user_config, tmp_path):
    spec = SpecHost(tmp_path)
    user_config.write_text('args_key = ""\n')
    before = spec.files()
    for argv in (["scan-vms"], ["repair-vm", f"--vm-uuid={spec.uuid('VM-1')}"]):
        outcome = spec.cli(*argv, stdin="yes\n")
        assert outcome.code == 2 and outcome.out == ""
        assert outcome.one_error_line() == f"error: {user_config}: setting args_key = '' must be {ARGS_KEY_ALLOWED}"
    assert spec.files() == before


# --- db and host: a config file that sets them names something ----------------------------------------------

HOST_ALLOWED = "a host URI such as xe: or sim:PATH, a label of [hosts], or a list of labels"


@pytest.mark.parametrize(("toml", "expected"), [
    ('db = ""\n', "setting db = '' must be the path of a database file"),
    ('db = "   "\n', "setting db = '   ' must be the path of a database file"),
    ('host = ""\n', f"setting host = '' must be {HOST_ALLOWED}"),
    ('host = " , "\n', f"setting host = ' , ' must be {HOST_ALLOWED}"),
    ("host = []\n", f"setting host = [] must be {HOST_ALLOWED}"),
    # an empty item of a list names no host: a typo (gpu1,,gpu2), not a list of two, so not taken as one
    ('host = "gpu1,,gpu2"\n', f"setting host = 'gpu1,,gpu2' must be {HOST_ALLOWED}"),
    ('host = "gpu1,"\n', f"setting host = 'gpu1,' must be {HOST_ALLOWED}"),
    ('host = ["gpu1", ""]\n', f"setting host = ['gpu1', ''] must be {HOST_ALLOWED}"),
])
def test_an_empty_db_or_host_names_the_file_and_the_key(user_config, toml, expected):
    assert _refusal(user_config, toml) == f"{user_config}: {expected}"


# A variable set but empty (VGPU_DB=, or VGPU_DB=$UNSET_NAME) names nothing, and must not quietly mean the default.
EMPTY_IN_THE_ENVIRONMENT = [
    ("VGPU_DB", "", "VGPU_DB: invalid database path '': expected the path of a database file"),
    ("VGPU_DB", "  ", "VGPU_DB: invalid database path '  ': expected the path of a database file"),
    ("VGPU_HOST", "", f"VGPU_HOST: invalid host '': expected {HOST_ALLOWED}"),
    ("VGPU_HOST", " , ", f"VGPU_HOST: invalid host ' , ': expected {HOST_ALLOWED}"),
    ("VGPU_HOST", "gpu1,,gpu2", f"VGPU_HOST: invalid host 'gpu1,,gpu2': expected {HOST_ALLOWED}"),
    ("VGPU_HOST", ",gpu1", f"VGPU_HOST: invalid host ',gpu1': expected {HOST_ALLOWED}"),
    ("VGPU_CLEAN_TIMEOUT", "",
     "VGPU_CLEAN_TIMEOUT: invalid clean timeout '': expected a number of seconds from 0 to 86400"),
    ("VGPU_SYSTEM_CONFIG", "", "VGPU_SYSTEM_CONFIG: invalid config file path '': expected the path of a config file"),
]


@pytest.mark.parametrize(("variable", "value", "expected"), EMPTY_IN_THE_ENVIRONMENT)
def test_an_empty_environment_variable_is_refused_not_the_default(variable, value, expected):
    with pytest.raises(ConfigError) as caught:
        config.load(environ={variable: value})
    assert str(caught.value) == expected


@pytest.mark.parametrize(("variable", "value", "expected"), EMPTY_IN_THE_ENVIRONMENT)
def test_an_empty_environment_variable_is_refused_on_the_command_line_and_opens_nothing(
        isolated_environment, tmp_path, monkeypatch, variable, value, expected):
    monkeypatch.chdir(tmp_path)  # an empty db would name the working directory
    monkeypatch.setenv(variable, value)
    for command in ("list-vms", "scan-vms"):
        outcome = run([command])
        assert outcome.code == 2 and outcome.out == ""
        assert outcome.one_error_line() == f"error: {expected}"
    assert list(tmp_path.iterdir()) == [] and not (isolated_environment / "data" / "vgpu").exists()


@pytest.mark.parametrize(("variable", "value", "expected"), EMPTY_IN_THE_ENVIRONMENT)
def test_connect_refuses_an_empty_environment_variable_as_vgpu_admin_does(
        isolated_environment, tmp_path, monkeypatch, variable, value, expected):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as caught:
        connect()
    assert str(caught.value) == expected
    assert list(tmp_path.iterdir()) == [] and not (isolated_environment / "data" / "vgpu").exists()


@pytest.mark.parametrize("toml", ['db = ""\n', 'host = ""\n'])
def test_an_empty_db_or_host_in_the_config_is_refused_on_the_command_line(user_config, tmp_path, monkeypatch, toml):
    monkeypatch.chdir(tmp_path)  # an empty db once named the working directory
    user_config.write_text(toml)
    for command in ("list-pools", "scan-vms"):
        outcome = run([command])
        assert outcome.code == 2 and outcome.out == ""
        key = toml.split(" =")[0]
        assert outcome.one_error_line().startswith(f"error: {user_config}: setting {key} = '' must be ")
    assert list(tmp_path.iterdir()) == []


# --- a relative db in a config file -----------------------------------------------------------------------------


def test_a_relative_db_in_a_config_file_is_taken_from_that_files_directory(user_config, tmp_path, monkeypatch):
    # Taken from the working directory, a run from elsewhere made a new, empty database there and found none of
    # the VMs registered; the file's directory is where a relative sim: path in it is taken from too.
    user_config.write_text('db = "fleet.db"\nhost = "sim:demo"\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert config.load().db == str(user_config.parent / "fleet.db")
    outcome = run(["list-pools"])
    assert outcome.code == 0, outcome
    assert (user_config.parent / "fleet.db").exists() and list(elsewhere.iterdir()) == []


@pytest.mark.parametrize(("variable", "flag"), [("VGPU_DB", None), (None, "--db=here.db")])
def test_a_relative_db_from_the_environment_or_a_flag_is_taken_from_the_working_directory(
        user_config, tmp_path, monkeypatch, variable, flag):
    user_config.write_text('db = "fleet.db"\n')
    monkeypatch.chdir(tmp_path)
    if variable:
        monkeypatch.setenv(variable, "here.db")
    explicit = {"db": flag.split("=", 1)[1]} if flag else None
    assert config.load(explicit).db == "here.db"


def test_a_config_file_that_is_not_utf8_is_one_line_naming_the_file(user_config, tmp_path):
    spec = SpecHost(tmp_path)
    # tomllib raises UnicodeDecodeError (a ValueError, not a TOMLDecodeError) for bytes that are not UTF-8:
    # it used to escape as a traceback from every command.
    user_config.write_bytes(b"clean_timeout = 5 # caf\xe9\n")
    user_config.chmod(0o600)
    outcome = run(["--db", str(spec.db), "list-pools"])
    assert outcome.code == 2, outcome
    assert outcome.one_error_line() == (f"error: {user_config}: cannot read config file: it is not UTF-8 text "
                                        "(byte 0xe9 at offset 23)")
