"""A password written into a host URI (USER:PASSWORD@HOST) is refused, for every scheme, and no error, repr or
JSON repeats it, whatever characters it holds. urllib leaves ``password`` None when one holds '/', '#' or '?',
which let such a password through to "invalid host URI '...'" sentences, and a libvirt one to every scan."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from vgpu import config, host_uri, hostspecs
from vgpu.errors import InvalidValue, VgpuError
from vgpu.hostspecs import HostSpec
from vgpu.hypervisor import open_host
from vgpu.hypervisor.xapi_uri import parse_uri

from .clikit import run

MARK = "Zz9secret"  # in every generated password, and in nothing else a refusal could say
SCHEMES = st.from_regex(r"[A-Za-z][A-Za-z0-9+.-]{0,10}", fullmatch=True) | st.sampled_from(
    ["xapi", "xapis", "XAPI", "xapi+https", "xapi+unix", "https", "qemu+ssh", "qemu+tcp", "test", "sim", "xe"])
PASSWORDS = st.builds(lambda before, after: before + MARK + after, st.text(max_size=6), st.text(max_size=6))
URIS = st.builds(lambda scheme, slashes, user, password, rest: f"{scheme}:{slashes}{user}:{password}@{rest}",
                 SCHEMES, st.sampled_from(["//", ""]), st.text(max_size=6), PASSWORDS, st.text(max_size=12))

TESTER_URIS = [
    "xapi://root:Zz9/secret@xcp1.example.com", "xapi://root:Zz9#secret@xcp1.example.com",
    "xapi://root:Zz9?secret@xcp1.example.com", "XAPI://root:Zz9secret@h", "https://root:Zz9secret@h",
    "xapi+https://root:Zz9secret@h", "xapis://root:Zz9/secret@h?cafile=/etc/ca.pem",
    "qemu+ssh://root:Zz9/secret@kvm/system", "xapi+unix://root:Zz9secret@h/x", "xapi://root:my Zz9secret@h",
    # USER:PASSWORD@HOST without a scheme: 'root' passed for one, and no second ':' meant "no password"
    "root:Zz9secret@pool1-master", "root:Zz9:secret@h", "admin_1:Zz9secret@h", "1root:Zz9secret@h",
    "root:Zz9//secret@h", "xapi:root:Zz9secret@h", "SIM:Zz9secret@h", ":Zz9secret@h",
]


def refusal(check, uri: str) -> InvalidValue | VgpuError:
    with pytest.raises(VgpuError) as caught:
        check(uri)
    return caught.value


def shown(error: VgpuError) -> str:
    """Everything of the error a person, a log or --format=json could see."""
    return " ".join([str(error), repr(error), repr(getattr(error, "value", ""))])


CHECKS = {
    "host_uri.check": host_uri.check,
    "open_host": open_host,
    "[hosts] entry": lambda uri: hostspecs.from_table({"gpu1": uri}, "/etc/vgpu/config.toml"),
    "--host LABEL=URI": lambda uri: hostspecs.select([f"gpu1={uri}"], {}, hostspecs.FLAG),
    "--host URI --host LABEL": lambda uri: hostspecs.select([uri, "gpu1"], {"gpu1": HostSpec("gpu1", "xe:")},
                                                            hostspecs.FLAG),
    "VGPU_HOST": lambda uri: hostspecs.select([uri, "gpu1"], {}, hostspecs.ENVIRONMENT),
}


@pytest.mark.parametrize("uri", TESTER_URIS)
@pytest.mark.parametrize("where", CHECKS)
def test_the_testers_uris_are_refused_without_the_password(where, uri):
    text = shown(refusal(CHECKS[where], uri))
    assert "Zz9" not in text and "secret@" not in text


@pytest.mark.parametrize("uri", TESTER_URIS)
def test_the_refusal_says_a_password_is_not_allowed_and_masks_it(uri):
    error = refusal(host_uri.check, uri)
    assert isinstance(error, InvalidValue) and "a URI without a password" in str(error)
    assert ":***@" in str(error)


@pytest.mark.parametrize("uri", [uri for uri in TESTER_URIS if uri.lower().startswith(("xapi://", "xapis://"))])
def test_parse_uri_alone_refuses_them_too(uri):
    text = shown(refusal(parse_uri, uri))
    assert "Zz9" not in text and "set VGPU_XAPI_PASSWORD" in text


# a user name before USER:PASSWORD@HOST, without a scheme: anything but the path schemes sim:, xe:, xapi+unix:
BARE_USERS = st.text(max_size=8).filter(lambda user: ":" not in user and user not in ("sim", "xe", "xapi+unix"))
BARE_URIS = st.builds(lambda user, password, rest: f"{user}:{password}@{rest}", BARE_USERS,
                      PASSWORDS.filter(lambda password: not password.startswith("//")), st.text(max_size=12))


@given(uri=URIS | BARE_URIS)
@example(uri="xapi://root:/Zz9secret@h")
@example(uri="xapi://a@b:c:Zz9secret@d@e/f?g=h@i")
@example(uri="qemu+ssh://root:Zz9secret\0@kvm/system")
def test_no_generated_password_appears_in_any_error_for_any_scheme(uri):
    same_uri_other_password = uri.replace(MARK, "x", 1)
    for check in CHECKS.values():
        text = shown(refusal(check, uri))
        assert MARK not in text
        # the refusal says the same whatever the password is: nothing of it shows
        assert text == shown(refusal(check, same_uri_other_password))


@pytest.mark.parametrize("uri", ["xapi://root@xcp1:443", "xapi://root@[fd00::5]:80", "xapis://root@h?cafile=/a/b.pem",
                                 "qemu+ssh://root@kvm3/system", "qemu:///system", "xapi+unix:", "xe:", "sim:/tmp/a.json",
                                 "sim:/tmp/pool@2.json", "xe:/opt/xe@1/bin/xe", "xapi+unix:/var/run/xapi@1",
                                 "test:///default", "qemu+ssh://root@kvm3/system"])
def test_uris_without_a_password_are_still_accepted(uri):
    assert host_uri.check(uri) == uri


@pytest.mark.parametrize("uri", ["xapi://root:Zz9/secret@xcp1.example.com", "xapi://root:Zz9?secret@xcp1.example.com"])
@pytest.mark.parametrize("output", [[], ["--format=json"]])
def test_on_the_command_line_one_line_exit_2_and_no_password(isolated_environment, uri, output):
    outcome = run(["--host", uri, "status", *output])
    assert outcome.code == 2 and "Zz9" not in outcome.out + outcome.err
    assert outcome.one_error_line().startswith("error: invalid host URI 'xapi://root:***@xcp1.example.com': "
                                               "expected a URI without a password")


def test_a_libvirt_uri_with_a_password_in_hosts_is_refused_before_any_scan(isolated_environment):
    path = isolated_environment / "config" / "vgpu" / "config.toml"
    path.parent.mkdir(parents=True)
    path.write_text('[hosts]\ngpu1 = "qemu+ssh://root:Zz9/secret@kvm/system"\ngpu2 = "xe:"\n')
    outcome = run(["scan-vms", "--format=json"])
    assert outcome.code == 2 and "Zz9" not in outcome.out + outcome.err
    assert outcome.one_error_line().startswith(
        f"error: {path}: host gpu1: invalid host URI 'qemu+ssh://root:***@kvm/system': expected a URI without a "
        "password")
    assert "libvirt asks for one itself" in outcome.one_error_line() and outcome.out == ""
    with pytest.raises(VgpuError):
        config.load()


# --- USER:PASSWORD@HOST without a scheme, as a tester typed it ------------------------------------------


def test_a_bare_user_password_at_host_on_the_command_line_is_refused_masked(isolated_environment):
    outcome = run(["--host=root:Zz9secret@pool1-master", "list-pools"])
    assert outcome.code == 2 and "Zz9" not in outcome.out + outcome.err
    assert outcome.one_error_line().startswith("error: invalid host URI 'root:***@pool1-master': "
                                               "expected a URI without a password")


def test_a_bare_user_password_at_host_in_a_fleet_label_is_refused_masked(isolated_environment):
    outcome = run(["--host=gpu1=root:Zz9secret@h", "--host=gpu2=xe:", "list-pools"])
    assert outcome.code == 2 and "Zz9" not in outcome.out + outcome.err
    assert outcome.one_error_line().startswith("error: --host: host gpu1: invalid host URI 'root:***@h': "
                                               "expected a URI without a password")


@pytest.mark.parametrize("value, shown", [("root:Zz9secret@h", "root:***@h"), ("gpu1=root:Zz9secret@h,gpu2=xe:", "root:***@h")])
def test_a_bare_user_password_at_host_in_vgpu_host_is_refused_masked(isolated_environment, monkeypatch, value, shown):
    monkeypatch.setenv("VGPU_HOST", value)
    outcome = run(["list-pools"])
    assert outcome.code == 2 and "Zz9" not in outcome.out + outcome.err
    line = outcome.one_error_line()
    assert f"invalid host URI '{shown}': expected a URI without a password" in line


def test_a_bare_user_password_at_host_in_the_config_is_refused_masked(isolated_environment):
    path = isolated_environment / "config" / "vgpu" / "config.toml"
    path.parent.mkdir(parents=True)
    path.write_text('host = "root:Zz9secret@h"\n')
    outcome = run(["list-pools"])
    assert outcome.code == 2 and "Zz9" not in outcome.out + outcome.err
    assert "invalid host URI 'root:***@h': expected a URI without a password" in outcome.one_error_line()


# A list of hosts (VGPU_HOST, config `host`) is split at its commas: a password holding one must not be cut
# in two and half of it shown as "invalid host URI 'root:Zz9'".
@pytest.mark.parametrize("value", ["gpu1=root:Zz9se,cret@h,gpu2=xe:", "gpu1=xapi://root:Zz9se,cret@h,gpu2=xe:",
                                   "gpu2=xe:,gpu1=root:Zz9,se,cret@h"])
def test_a_password_holding_a_comma_in_a_host_list_is_refused_masked_whole(isolated_environment, monkeypatch, value):
    monkeypatch.setenv("VGPU_HOST", value)
    outcome = run(["list-pools"])
    assert outcome.code == 2 and "Zz9" not in outcome.out + outcome.err and "cret" not in outcome.out + outcome.err
    assert "expected a URI without a password" in outcome.one_error_line()


def test_a_host_list_whose_later_host_has_a_user_is_not_taken_for_a_password(isolated_environment, monkeypatch, tmp_path):
    monkeypatch.setenv("VGPU_HOST", f"a=sim:{tmp_path}/x.json,b=sim:{tmp_path}/y.json")
    assert run(["list-pools"]).code == 0
    from vgpu.hostspecs import split_words
    assert split_words("a=sim:/x.json,b=xapi://root@h") == ["a=sim:/x.json", "b=xapi://root@h"]
    assert split_words("a=xe:,b=qemu+ssh://u@h/system") == ["a=xe:", "b=qemu+ssh://u@h/system"]


def test_a_password_holding_a_comma_in_the_config_host_list_is_refused_masked(isolated_environment):
    path = isolated_environment / "config" / "vgpu" / "config.toml"
    path.parent.mkdir(parents=True)
    path.write_text('host = "gpu1=root:Zz9se,cret@h,gpu2=xe:"\n')
    outcome = run(["list-pools"])
    assert outcome.code == 2 and "Zz9" not in outcome.out + outcome.err and "cret" not in outcome.out + outcome.err
    assert "a URI without a password" in outcome.one_error_line()


# A config value of the wrong type or form is repeated by its refusal: any password in it, however deep in a
# table or a list, is masked there as a host URI's is (it gave "host gx = {'url': 'xapi://root:Zz9secret@h'}").
@pytest.mark.parametrize("toml", [
    '[hosts]\ngx = { url = "xapi://root:Zz9secret@h" }\n',
    '[hosts]\ngx = ["xapi://root:Zz9secret@h"]\n',
    '[hosts]\ngx = { uri = ["xapi://root:Zz9secret@h"] }\n',
    '[hosts]\ngx = { uri = "xapi://root@h", follow_master = ["root:Zz9secret@h"] }\n',
    '[hosts]\ngx = { uri = "xapi://root@h", follow_master = "xapi://root:Zz9secret@h" }\n',
    '[hosts]\ngx = { uri = "xe:", args_key = "xapi://root:Zz9secret@h" }\n',
    '[hosts]\ngx = { uri = "xe:", "xapi://root:Zz9secret@h" = 1 }\n',
    '[hosts]\n"root:Zz9secret@h" = "xe:"\n',
    'hosts = "xapi://root:Zz9secret@h"\n',
    'host = { uri = "xapi://root:Zz9secret@h" }\n',
    'db = ["xapi://root:Zz9secret@h"]\n',
    'args_key = "xapi://root:Zz9secret@h"\n',
    '"xapi://root:Zz9secret@h" = 1\n',
])
def test_a_refused_config_value_holding_a_password_shows_it_masked(isolated_environment, toml):
    path = isolated_environment / "config" / "vgpu" / "config.toml"
    path.parent.mkdir(parents=True)
    path.write_text(toml)
    with pytest.raises(VgpuError) as caught:
        config.load()
    assert "Zz9" not in shown(caught.value) and "***" in str(caught.value)
    outcome = run(["list-pools"])
    assert outcome.code == 2 and "Zz9" not in outcome.out + outcome.err
    assert outcome.one_error_line().startswith(f"error: {path}: ") and "***" in outcome.err
