"""Naming a fleet: config.toml's [hosts], a repeatable --host and VGPU_HOST; labels and URIs checked first."""

from __future__ import annotations

import os

import pytest

from vgpu import config
from vgpu.errors import ConfigError, InvalidValue
from vgpu.hostspecs import HostSpec

from .clikit import run

FLEET_TOML = """
[hosts]
gpu1 = "xapi://root@pool1-master"
kvm3 = "qemu+ssh://root@kvm3/system"
gpu2 = { uri = "xapis://root@10.0.2.1?cafile=/etc/vgpu/pool2.pem", follow_master = ["10.0.2.0/24", "xcp-b2.example"] }
"""


@pytest.fixture
def user_config(isolated_environment):
    path = isolated_environment / "config" / "vgpu" / "config.toml"
    path.parent.mkdir(parents=True)
    return path


def test_hosts_table_names_every_host_of_the_fleet_in_its_order(user_config):
    user_config.write_text(FLEET_TOML)
    settings = config.load()
    assert [spec.label for spec in settings.hosts] == ["gpu1", "kvm3", "gpu2"]
    assert settings.hosts[2] == HostSpec("gpu2", "xapis://root@10.0.2.1?cafile=/etc/vgpu/pool2.pem",
                                         ("10.0.2.0/24", "xcp-b2.example"))
    assert settings.is_fleet and settings.host == "gpu1,kvm3,gpu2"
    assert settings.sources["host"] == str(user_config)


def test_a_label_on_the_command_line_narrows_the_run_to_configured_hosts(user_config):
    user_config.write_text(FLEET_TOML)
    settings = config.load({"host": ["gpu2"]})
    assert settings.hosts == (config.load().hosts[2],) and not settings.is_fleet
    assert [spec.label for spec in settings.configured] == ["gpu1", "kvm3", "gpu2"]  # the others are known
    assert [spec.label for spec in config.load({"host": ["kvm3", "gpu1"]}).hosts] == ["kvm3", "gpu1"]


def test_label_equals_uri_defines_hosts_with_no_config(tmp_path):
    settings = config.load({"host": [f"a=sim:{tmp_path}/a.json", f"b=sim:{tmp_path}/b.json"]})
    assert settings.hosts == (HostSpec("a", f"sim:{tmp_path}/a.json"), HostSpec("b", f"sim:{tmp_path}/b.json"))


def test_a_single_bare_uri_is_one_host_as_before_fleets(tmp_path):
    settings = config.load({"host": [f"sim:{tmp_path}/x,y.json"]})  # a comma in a path is no list
    assert settings.hosts == (HostSpec("", f"sim:{tmp_path}/x,y.json"),) and settings.host == f"sim:{tmp_path}/x,y.json"
    assert config.load({"host": f"sim:{tmp_path}/h.json"}).hosts == (HostSpec("", f"sim:{tmp_path}/h.json"),)


def test_a_bare_uri_that_is_a_configured_host_takes_its_label_and_settings(user_config):
    user_config.write_text(FLEET_TOML)
    settings = config.load({"host": ["xapis://root@10.0.2.1?cafile=/etc/vgpu/pool2.pem"]})
    assert settings.hosts == (config.load().hosts[2],)


def test_vgpu_host_takes_the_same_words_separated_by_commas(user_config, tmp_path, monkeypatch):
    user_config.write_text(FLEET_TOML)
    monkeypatch.setenv("VGPU_HOST", f"kvm3, extra=sim:{tmp_path}/e.json")
    assert [(spec.label, spec.uri) for spec in config.load().hosts] == [
        ("kvm3", "qemu+ssh://root@kvm3/system"), ("extra", f"sim:{tmp_path}/e.json")]
    monkeypatch.setenv("VGPU_HOST", f"sim:{tmp_path}/a,b.json")
    assert config.load().hosts == (HostSpec("", f"sim:{tmp_path}/a,b.json"),)


def test_the_command_line_wins_over_the_environment_over_the_config(user_config, monkeypatch):
    user_config.write_text('host = "kvm3"\n' + FLEET_TOML)
    assert [s.label for s in config.load().hosts] == ["kvm3"]
    monkeypatch.setenv("VGPU_HOST", "gpu1")
    assert [s.label for s in config.load().hosts] == ["gpu1"]
    assert [s.label for s in config.load({"host": ["gpu2"]}).hosts] == ["gpu2"]


def test_the_default_is_still_one_unlabelled_host():
    settings = config.load()
    assert settings.hosts == (HostSpec("", config.default_uri()),) and settings.configured == ()


@pytest.mark.parametrize(("words", "expected"), [
    (["GPU1=sim:/tmp/x.json"], "invalid host label 'GPU1': expected 1 to 32 lower-case letters"),
    (["gpu 1=sim:/tmp/x.json"], "invalid host label 'gpu 1'"),
    (["-x=sim:/tmp/x.json"], "invalid host label '-x'"),
    (["a=vmware://esx"], "host a: invalid host URI 'vmware://esx': expected sim:PATH"),
    (["a=sim:"], "invalid host URI 'sim:'"),
    (["a=xapi://root:secret@h"], "a URI without a password"),
    (["a=sim:/tmp/x.json", "a=sim:/tmp/y.json"], "host a is named twice"),
    (["a=sim:/tmp/x.json", "b=sim:/tmp/x.json"], "hosts a and b have the same URI sim:/tmp/x.json"),
    (["nosuch"], "unknown host 'nosuch': expected a label of config.toml [hosts] (it has none), LABEL=URI, or a URI"),
])
def test_a_bad_host_word_is_refused_naming_the_value_and_what_is_allowed(words, expected):
    with pytest.raises(ConfigError) as caught:
        config.load({"host": words})
    assert str(caught.value).startswith("--host: ") and expected in str(caught.value)
    assert "secret" not in str(caught.value)


def test_two_bare_uris_are_refused_since_several_hosts_need_labels():
    with pytest.raises(InvalidValue) as caught:
        config.load({"host": ["sim:/tmp/a.json", "sim:/tmp/b.json"]})
    assert str(caught.value).startswith("--host given twice with a bare URI (sim:/tmp/a.json, sim:/tmp/b.json)")
    assert "LABEL=URI" in str(caught.value)


# Two spellings of one host, as the host's own reader takes them: each pair would list every VM twice.
ONE_HOST_TWO_SPELLINGS = [
    ("sim:{dir}/a.json", "sim:{dir}//a.json"),
    ("sim:{dir}/a.json", "sim:a.json"),  # relative to the working directory, where the host file is opened
    ("sim:{dir}/a.json", "sim:{dir}/sub/../a.json"),
    ("sim:{dir}/a.json", "sim:{dir}/link.json"),  # a symlink to it
    ("xapi://root@127.0.1.1:44561", "xapi://root@127.0.1.1:44561/"),
    ("xapi://root@127.0.1.1:44561", "xapi://root@127.0.1.1:044561"),
    ("xapi://root@pool1-master", "xapi://root@POOL1-Master"),
    ("xapi://pool1-master", "xapi://root@pool1-master:80"),  # the default user and port filled in
    ("xapis://root@10.0.2.1?cafile=/etc/vgpu/pool2.pem", "xapis://root@10.0.2.1:443/"),
    ("xapi+unix:", "xapi+unix:/var/lib/xcp/xapi"),
    ("xe:", "xe:xe"),
    ("qemu+ssh://root@kvm3/system", "qemu+ssh://root@KVM3/system"),
    ("xapi://root@pool1-master", "xapis://root@pool1-master"),  # the one XAPI, over http and https
    ("xapi://pool1-master", "xapis://root@POOL1-master:443/"),
    ("xapis://root@pool1-master:443", "xapi://root@pool1-master:80"),
    ("xapi://root@pool1-master", "xapi://admin@pool1-master"),  # one XAPI, whichever user logs in to it
    ("qemu:///system", "qemu+unix:///system"),  # the one local libvirtd, its default transport named
    ("qemu+unix:///system?socket=/run/l.sock", "qemu:///system?socket=/run/l.sock"),
]
# ... and different hosts, or spellings the host's reader does not take as one host, which stay apart.
DIFFERENT_HOSTS = [
    ("sim:{dir}/a.json", "sim:{dir}/b.json"),
    ("xapi://root@127.0.1.1:44561", "xapi://root@127.0.1.1:44562"),
    ("xapi://root@pool1-master:8080", "xapis://root@pool1-master"),
    ("xapis://root@pool1-master:8443", "xapis://root@pool1-master"),
    ("xapi://root@pool1-master", "xapis://root@pool2-master"),
    ("xapi+unix:", "xapi+unix:/run/pool2/xapi"),
    ("xe:", "xe:/usr/local/bin/xe-pool2"),
    ("qemu+ssh://root@kvm3/system", "qemu+ssh://root@kvm4/system"),
    ("qemu+ssh://alice@kvm3/session", "qemu+ssh://bob@kvm3/session"),  # each user's own session daemon
    ("test:///default", "test:///default/"),  # libvirt reads a trailing '/' as another path
    ("qemu:///system", "qemu:///session"),
    ("qemu+unix:///system", "qemu+unix:///session"),
    ("qemu:///system", "qemu+unix:///system?socket=/run/other.sock"),
    ("qemu://kvm3/system", "qemu+unix://kvm3/system"),  # TLS to kvm3, and a local socket: not known to be one
    ("qemu:///system", "qemu+ssh://root@localhost/system"),
]


def _spelled(uri, tmp_path):
    return uri.format(dir=tmp_path)


@pytest.mark.parametrize(("first", "second"), ONE_HOST_TWO_SPELLINGS)
def test_two_labels_for_two_spellings_of_one_host_are_refused(tmp_path, monkeypatch, first, second):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    (tmp_path / "link.json").symlink_to(tmp_path / "a.json")
    first, second = _spelled(first, tmp_path), _spelled(second, tmp_path)
    with pytest.raises(ConfigError) as caught:
        config.load({"host": [f"a={first}", f"b={second}"]})
    assert str(caught.value) == f"--host: hosts a and b have the same URI {first} (b writes it {second}); keep one"


@pytest.mark.parametrize(("first", "second"), DIFFERENT_HOSTS)
def test_two_labels_for_different_hosts_are_two_hosts(tmp_path, first, second):
    first, second = _spelled(first, tmp_path), _spelled(second, tmp_path)
    assert [spec.uri for spec in config.load({"host": [f"a={first}", f"b={second}"]}).hosts] == [first, second]


def test_a_hosts_table_with_two_spellings_of_one_host_names_the_file(user_config):
    user_config.write_text('[hosts]\ngpu1 = "xapi://root@pool1:443"\ngpu2 = "xapi://root@Pool1:0443/"\n')
    with pytest.raises(ConfigError) as caught:
        config.load()
    assert str(caught.value) == (f"{user_config}: hosts gpu1 and gpu2 have the same URI xapi://root@pool1:443 "
                                 "(gpu2 writes it xapi://root@Pool1:0443/); keep one")


@pytest.mark.parametrize(("first", "second"), [
    ("sim:{dir}/a.json", "sim:{dir}//a.json"),
    ("xapi://root@pool1-master", "xapis://root@pool1-master"),
    ("qemu:///system", "qemu+unix:///system"),
])
def test_on_the_command_line_two_spellings_of_one_host_are_one_line_and_exit_2(tmp_path, spec_free_db, first, second):
    first, second = _spelled(first, tmp_path), _spelled(second, tmp_path)
    outcome = run(["scan-vms", "--db", str(spec_free_db), "--host", f"a={first}", "--host", f"b={second}"])
    assert outcome.code == 2 and outcome.one_error_line() == (
        f"error: --host: hosts a and b have the same URI {first} (b writes it {second}); keep one")
    assert not spec_free_db.exists()


@pytest.mark.parametrize(("toml", "expected"), [
    ('[hosts]\n"Big Host" = "xe:"\n', "invalid host label 'Big Host'"),
    ('[hosts]\ngpu1 = 7\n', "host gpu1 = 7: expected \"URI\" or { uri = \"URI\", ... }"),
    ('[hosts]\ngpu1 = { url = "xe:" }\n', "host gpu1 = {'url': 'xe:'}"),
    ('[hosts]\ngpu1 = { uri = "xe:", colour = "red" }\n', "host gpu1: unknown setting 'colour'; expected one of uri, follow_master, args_key"),
    ('[hosts]\ngpu1 = { uri = "xe:", follow_master = ["10.0.0.1"] }\n', "follow_master applies to xapi:// and xapis:// hosts only"),
    ('[hosts]\ngpu1 = { uri = "xapi://root@h", follow_master = "10.0.0.1" }\n', "must be a list of IP addresses"),
    ('[hosts]\ngpu1 = { uri = "xapi://root@h", follow_master = ["not an address!"] }\n', "invalid follow_master entry 'not an address!'"),
    ('hosts = "gpu1"\n', "setting hosts = 'gpu1' has the wrong type"),
    ("parallel_hosts = 0\n", "parallel_hosts = 0 must be a whole number of at least 1"),
    # a top-level setting written below [hosts] is read as a host: the error says where it belongs
    ('[hosts]\ngpu1 = "xe:"\nparallel_hosts = 2\n', "host parallel_hosts = 2: expected \"URI\" or { uri = \"URI\", ... }; "
                                                     "parallel_hosts is a setting: put it above [hosts]"),
    ('[hosts]\ngpu1 = "xe:"\nclean_timeout = 60\n', "clean_timeout is a setting: put it above [hosts]"),
])
def test_a_bad_hosts_table_names_the_file_and_the_value(user_config, toml, expected):
    user_config.write_text(toml)
    with pytest.raises(ConfigError) as caught:
        config.load()
    assert str(caught.value).startswith(f"{user_config}: ") and expected in str(caught.value)


def test_on_the_command_line_a_bad_label_is_one_line_and_exit_2_with_nothing_done(spec_free_db):
    outcome = run(["list-pools", "--db", str(spec_free_db), "--host", "Bad Label=sim:/tmp/x.json", "--host", "b=sim:/tmp/y.json"])
    line = outcome.one_error_line()
    assert outcome.code == 2 and line.startswith("error: --host: invalid host label 'Bad Label': expected")
    assert not spec_free_db.exists()


@pytest.mark.parametrize("others", [["gpu1"], ["kvm3=sim:/tmp/kvm3.json"], ["gpu1", "kvm3=sim:/tmp/kvm3.json"]])
def test_a_label_and_a_bare_uri_are_not_called_a_bare_uri_given_twice(user_config, others):
    user_config.write_text('[hosts]\ngpu1 = "sim:/tmp/gpu1.json"\n')
    with pytest.raises(InvalidValue) as caught:
        config.load({"host": [*others, "xapi://root@127.0.2.1:37617"]})
    named = ", ".join(word.partition("=")[0] for word in others)
    assert str(caught.value) == (
        f"--host xapi://root@127.0.2.1:37617 is a bare URI, which names the only host of a run: it cannot be mixed "
        f"with other hosts ({named}); name each host as --host LABEL=URI or a LABEL of config.toml [hosts], or give "
        "one --host URI alone")


def test_on_the_command_line_a_label_and_a_bare_uri_are_one_clear_line(user_config, spec_free_db):
    user_config.write_text('[hosts]\ngpu1 = "sim:/tmp/gpu1.json"\n')
    outcome = run(["--host", "gpu1", "--host", "xapi://root@127.0.2.1:37617", "--db", str(spec_free_db), "status"])
    assert outcome.code == 2 and "given twice" not in outcome.one_error_line()
    assert outcome.one_error_line().startswith("error: --host xapi://root@127.0.2.1:37617 is a bare URI")


def test_on_the_command_line_two_bare_uris_still_say_given_twice(spec_free_db):
    outcome = run(["list-pools", "--db", str(spec_free_db), "--host", "sim:/tmp/x.json", "--host=sim:/tmp/y.json"])
    assert outcome.code == 2 and "--host given twice" in outcome.one_error_line()


@pytest.fixture
def spec_free_db(tmp_path):
    return tmp_path / "never-created.db"


def test_with_no_host_set_xe_on_path_makes_the_default_xe_and_nothing_else_does(tmp_path, monkeypatch):
    bin_dir, plain = tmp_path / "bin", tmp_path / "plain"
    bin_dir.mkdir(), plain.mkdir()
    (bin_dir / "xe").write_text("#!/bin/sh\n")
    (bin_dir / "xe").chmod(0o755)
    (plain / "xe").write_text("not a program\n")  # there but not executable: not a dom0's xe
    (plain / "xe").chmod(0o644)
    monkeypatch.setenv("PATH", str(plain))
    assert config.default_uri() == config.DEMO_URI
    monkeypatch.setenv("PATH", os.pathsep.join([str(plain), str(bin_dir)]))
    assert config.default_uri() == "xe:"
    assert config.load({}, environ={}).hosts == (HostSpec("", "xe:"),)


@pytest.mark.parametrize("second", ["sim:{dir}/a.json", "sim:{dir}//a.json"])
def test_the_library_refuses_two_labels_for_one_host_too(tmp_path, second):
    from vgpu.hosts import open_fleet

    with pytest.raises(ConfigError, match="hosts a and b have the same URI"):
        open_fleet({"a": f"sim:{tmp_path}/a.json", "b": second.format(dir=tmp_path)})


def test_a_relative_sim_path_in_a_config_file_is_taken_from_that_files_directory(user_config, tmp_path, monkeypatch):
    # Run from elsewhere, "sim:gpu1.json" must not become a new, empty ./gpu1.json (every VM "Not on host").
    user_config.write_text('[hosts]\ngpu1 = "sim:gpu1.json"\ngpu2 = { uri = "sim:sub/gpu2.json" }\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    here = user_config.parent
    assert [spec.uri for spec in config.load().hosts] == [f"sim:{here / 'gpu1.json'}", f"sim:{here / 'sub' / 'gpu2.json'}"]
    # the duplicate check reads it the same way: the config's own file, spelled absolute, is the same host
    user_config.write_text(f'[hosts]\ngpu1 = "sim:gpu1.json"\ngpu2 = "sim:{here / "gpu1.json"}"\n')
    with pytest.raises(ConfigError, match="hosts gpu1 and gpu2 have the same URI"):
        config.load()
    # --host and VGPU_HOST stay relative to the working directory
    user_config.write_text("")
    monkeypatch.setenv("VGPU_HOST", "b=sim:b.json")
    assert config.load().hosts == (HostSpec("b", "sim:b.json"),)
    assert config.load({"host": ["a=sim:a.json"]}).hosts == (HostSpec("a", "sim:a.json"),)


def test_a_relative_sim_path_climbing_out_of_a_config_files_directory_is_named_without_its_dots(user_config, tmp_path,
                                                                                                   monkeypatch):
    # sim:../../hosts/a.json was kept as .../config/vgpu/../../hosts/a.json, which every output then showed
    user_config.write_text('[hosts]\ngpu1 = "sim:../../hosts/a.json"\ngpu2 = { uri = "sim:./b.json" }\n')
    monkeypatch.chdir(tmp_path)
    root = user_config.parent.parent.parent
    assert [spec.uri for spec in config.load().hosts] == [f"sim:{root / 'hosts' / 'a.json'}", f"sim:{user_config.parent / 'b.json'}"]
    user_config.write_text('host = "sim:../lab.json"\n')
    assert config.load().hosts == (HostSpec("", f"sim:{user_config.parent.parent / 'lab.json'}"),)


@pytest.mark.parametrize("host, expected", [
    ('"sim:lab.json"', [("", "lab.json")]), ('["sim:lab.json"]', [("", "lab.json")]),
    ('"lab=sim:lab.json"', [("lab", "lab.json")]),
    ('"lab=sim:lab.json,other=sim:sub/o.json"', [("lab", "lab.json"), ("other", "sub/o.json")]),
])
def test_a_relative_sim_path_in_a_config_files_host_is_taken_from_that_files_directory(user_config, tmp_path, monkeypatch,
                                                                                       host, expected):
    # The top-level host = key, as [hosts]: run from elsewhere, "sim:lab.json" made a new, empty ./lab.json, and a
    # scan called every registered VM missing (remove-vm then unregistered them).
    user_config.write_text(f"host = {host}\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert config.load().hosts == tuple(HostSpec(label, f"sim:{user_config.parent / path}") for label, path in expected)
    # --host and VGPU_HOST above it keep the working directory
    assert config.load({"host": ["sim:lab.json"]}).hosts == (HostSpec("", "sim:lab.json"),)


def test_a_config_files_host_naming_its_hosts_by_label_or_by_their_relative_uri_is_still_those_hosts(user_config, tmp_path,
                                                                                                    monkeypatch):
    user_config.write_text('host = "gpu1,gpu2"\n[hosts]\ngpu1 = "sim:a.json"\ngpu2 = "sim:b.json"\ngpu3 = "xe:"\n')
    monkeypatch.chdir(tmp_path)
    here = user_config.parent
    assert config.load().hosts == (HostSpec("gpu1", f"sim:{here / 'a.json'}"), HostSpec("gpu2", f"sim:{here / 'b.json'}"))
    user_config.write_text('host = "gpu2"\n[hosts]\ngpu1 = "sim:a.json"\ngpu2 = "sim:b.json"\n')
    assert config.load().hosts == (HostSpec("gpu2", f"sim:{here / 'b.json'}"),)
    # a bare URI that is one of [hosts], written as [hosts] writes it, takes that host's label
    user_config.write_text('host = "sim:b.json"\n[hosts]\ngpu1 = "sim:a.json"\ngpu2 = "sim:b.json"\n')
    assert config.load().hosts == (HostSpec("gpu2", f"sim:{here / 'b.json'}"),)


def test_a_vm_registered_through_a_config_files_relative_host_is_found_from_any_directory(user_config, tmp_path, monkeypatch):
    from vgpu.hypervisor.sim import SimHost

    vm_uuid = "12345678-0000-0000-0000-000000000001"
    SimHost(str(user_config.parent / "lab.json")).add_vm(vm_uuid, "labvm", "halted", "")
    user_config.write_text('host = "sim:lab.json"\n')
    monkeypatch.setenv("VGPU_DB", str(tmp_path / "v.db"))
    monkeypatch.chdir(user_config.parent)
    assert run(["register-vm", f"--vm-uuid={vm_uuid}"]).code == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    scan = run(["scan-vms"])
    assert scan.code == 0 and "missing from host" not in scan.out and vm_uuid in scan.out
    assert list(elsewhere.iterdir()) == []
