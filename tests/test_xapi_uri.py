"""XenAPI URIs and passwords: what is accepted, what is refused, and that a password never shows."""

from __future__ import annotations

import pickle

import pytest

from vgpu.errors import ConfigError, InvalidValue
from vgpu.hypervisor import open_host
from vgpu.hypervisor.xapi import XapiHost
from vgpu.hypervisor.xapi_uri import PASSWORD_ENV, Credentials, Secret, XapiTarget, parse_uri


@pytest.fixture(autouse=True)
def no_password_in_env(monkeypatch):
    monkeypatch.delenv(PASSWORD_ENV, raising=False)


@pytest.mark.parametrize(
    "uri, expected",
    [
        ("xapi://admin@xcp1", XapiTarget("http", "admin", "xcp1")),
        ("xapi://xcp1:8080", XapiTarget("http", "root", "xcp1", 8080)),
        ("xapis://root@10.0.0.5", XapiTarget("https", "root", "10.0.0.5")),
        ("xapis://root@xcp1?no_verify=1", XapiTarget("https", "root", "xcp1", verify=False)),
        ("xapis://root@xcp1?cafile=/etc/ca.pem", XapiTarget("https", "root", "xcp1", cafile="/etc/ca.pem")),
        ("xapi://root@[fd00::5]:80", XapiTarget("http", "root", "fd00::5", 80)),
        ("xapi+unix:", XapiTarget("unix", "root", socket_path="/var/lib/xcp/xapi")),
        ("xapi+unix:/run/my_xapi.sock", XapiTarget("unix", "root", socket_path="/run/my_xapi.sock")),
    ],
)
def test_accepted_forms(uri, expected):
    assert parse_uri(uri) == expected


def test_urls_and_display_names():
    assert parse_uri("xapi://root@[fd00::5]:80").url == "http://[fd00::5]:80/"
    assert parse_uri("xapis://admin@xcp1:8443").display == "xapis://admin@xcp1:8443"
    assert parse_uri("xapi+unix:").display == "xapi+unix:/var/lib/xcp/xapi"


@pytest.mark.parametrize(
    "uri",
    ["xapi://", "xapi://root@xcp1/some/path", "xapi://root@xcp1:99999", "xapi+unix:relative/path",
     "xapi://root@xcp1?no_verify=1", "xapis://root@xcp1?colour=blue", "xapis://root@xcp1?no_verify=maybe",
     "xapi+unix://root@host/var/lib/xcp/xapi"],
)
def test_refused_forms(uri):
    with pytest.raises(InvalidValue):
        parse_uri(uri)


def test_a_password_in_the_uri_is_refused_without_repeating_it():
    with pytest.raises(InvalidValue) as caught:
        open_host("xapi://root:Hunter2-secret@xcp1:80")
    message = str(caught.value)
    assert "Hunter2-secret" not in message and "Hunter2-secret" not in repr(caught.value.value)
    assert "root:***@xcp1:80" in message
    assert PASSWORD_ENV in message and "command line" in message


def test_open_host_builds_an_xapi_host_without_connecting():
    host = open_host("xapis://root@xcp1.example?no_verify=1")
    assert isinstance(host, XapiHost)
    assert host.uri == "xapis://root@xcp1.example"
    host.close()  # never connected: nothing to log out of


def test_environment_wins_over_the_prompt(monkeypatch):
    monkeypatch.setenv(PASSWORD_ENV, "from-env")
    asked = []
    credentials = Credentials(parse_uri("xapi://root@xcp1"), lambda: asked.append(1) or "typed")
    assert credentials.secret().reveal() == "from-env"
    assert asked == []


def test_the_prompt_is_asked_once():
    asked = []
    credentials = Credentials(parse_uri("xapi://root@xcp1"), lambda: asked.append(1) or "typed")
    assert credentials.secret().reveal() == "typed"
    assert credentials.secret().reveal() == "typed"
    assert asked == [1]


def test_no_environment_and_no_prompt_is_a_config_error():
    credentials = Credentials(parse_uri("xapi://root@xcp1"), None)
    with pytest.raises(ConfigError) as caught:
        credentials.secret()
    assert PASSWORD_ENV in str(caught.value) and "xapi://root@xcp1" in str(caught.value)


def test_the_dom0_socket_needs_no_password():
    assert Credentials(parse_uri("xapi+unix:"), None).secret().reveal() == ""


def test_a_secret_never_shows_itself():
    secret = Secret("s3cr3t-value")
    credentials = Credentials(parse_uri("xapi://h"), lambda: "s3cr3t-value")
    credentials.secret()
    for text in (repr(secret), str(secret), f"{secret}", repr([secret]), repr(credentials), repr(vars(credentials))):
        assert "s3cr3t-value" not in text
    assert secret.scrub("echo s3cr3t-value back") == "echo *** back"
    with pytest.raises(TypeError):
        pickle.dumps(secret)
