"""``netplumb cni install``: put the plugin where runtimes look, with an example conflist.

Two forms of the plugin. The default is a launcher with absolute paths to this installation's
Python and netplumb (``python -S``, no ``site``: the plugin runs once per container start).
``standalone`` writes one self-contained file instead, a zip application of netplumb's
standard-library-only modules run by the node's ``python3``, for nodes where netplumb itself is
not installed (the Kubernetes DaemonSet copies it out of its image).
"""

from __future__ import annotations

import os

from netplumb.errors import NetplumbError

PLUGIN = "netplumb-cni"
CONFLIST = "10-netplumb.conflist"

EXAMPLE = """{
  "cniVersion": "1.0.0",
  "name": "netplumb-cni",
  "plugins": [
    {
      "type": "netplumb-cni",
      "mode": "bridge",
      "bridge": "np-cni0",
      "subnet": "10.89.64.0/20",
      "isolation": false,
      "capabilities": {"portMappings": true, "ips": true, "mac": true}
    }
  ]
}
"""


def _entry(modules: str | None = None) -> list[str]:
    """The plugin's entry lines. A plugin process lives ~20 ms and exits without teardown: the
    cyclic garbage collector only costs it time (~1 ms of collections during its imports).
    ``modules``: the file of netplumb's compiled modules beside it (``cni/modules.py``)."""
    lines = ["import gc", "gc.disable()"]
    if modules is not None:
        from netplumb.cni.modules import boot_lines

        lines += boot_lines(modules)
    return [*lines, "from netplumb.cni.plugin import launch", "launch()"]


def _path_lines() -> list[str]:
    """The lines that put this installation's netplumb and site-packages on ``sys.path``."""
    import sysconfig

    import netplumb

    src = os.path.dirname(os.path.dirname(os.path.abspath(netplumb.__file__)))
    site = sysconfig.get_paths()["purelib"]
    # netplumb's own directory before site-packages: ``import netplumb`` looks in no other
    return ["import sys", f"sys.path += [{src!r}, {site!r}]"]


def launcher_text(modules: str | None = None) -> str:
    """A launcher for this installation: absolute paths, straight to the plugin. ``-S``: no
    ``site``; ``-P``: the plugin directory (a runtime's, full of other plugins) is not the first
    place every import looks."""
    import sys

    lines = [f"#!{sys.executable} -SP", "# netplumb-cni: written by `netplumb cni install`"]
    return "\n".join([*lines, *_path_lines(), *_entry(modules)]) + "\n"


def modules_bytes() -> bytes:
    """The file of this installation's compiled netplumb modules (``cni/modules.py``)."""
    import netplumb
    from netplumb.cni import modules

    return modules.pack(os.path.dirname(os.path.abspath(netplumb.__file__)))


def _c_string(text: str) -> str:
    out = ['"']
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


AGENT_MODES = ("auto", "connect", "off")


def compile_client(
    dest: str,
    agent: str = "auto",
    python: str | None = None,
    pyz: str | None = None,
    modules: str | None = None,
) -> bool:
    """Compile the agent client (client.c) to ``dest``, its fallback the Python plugin of this
    installation (or, with ``pyz``, the standalone plugin file ``pyz`` run by ``python``, and
    the client linked statically: it runs on another machine's libc); False when there is no
    C compiler (the Python launcher is installed then). ``modules``: the fallback's file of
    compiled modules (``cni/modules.py``).

    ``agent``: what the client does about the agent by default (``NETPLUMB_CNI_AGENT``
    overrides it per call): ``auto``, use it and start one when there is none; ``connect``,
    use one if it runs (the DaemonSet runs it); ``off``, always the Python plugin."""
    import shutil
    import subprocess
    import sys
    import tempfile

    if agent not in AGENT_MODES:
        raise NetplumbError(f"invalid agent mode {agent!r}: auto, connect or off")
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        return False
    head = _path_lines() if pyz is None else ["import sys", f"sys.path.insert(0, {pyz!r})"]
    code = "\n".join([*head, *_entry(modules)])
    agent_code = "\n".join([*head, "from netplumb.cni.agent import on_demand", "on_demand()"])
    source = os.path.join(os.path.dirname(os.path.abspath(__file__)), "client.c")
    with tempfile.TemporaryDirectory() as tmp:
        header = os.path.join(tmp, "config.h")
        with open(header, "w") as f:
            f.write(f"#define NETPLUMB_PYTHON {_c_string(python or sys.executable)}\n")
            f.write(f"#define NETPLUMB_PYCODE {_c_string(code)}\n")
            f.write(f"#define NETPLUMB_AGENTCODE {_c_string(agent_code)}\n")
            f.write(f"#define NETPLUMB_AGENT_MODE {_c_string(agent)}\n")
        static = ["-static"] if pyz is not None else []
        proc = subprocess.run(
            [cc, "-O2", "-s", *static, "-include", header, "-o", dest, source],
            capture_output=True,
            text=True,
            check=False,
        )
    if proc.returncode != 0:
        raise NetplumbError(f"cannot compile the netplumb-cni client: {proc.stderr.strip()}")
    return True


def standalone_bytes(python: str = "/usr/bin/python3") -> bytes:
    """A zip application: ``#!python -S`` then a zip of the modules the plugin runs, each with
    its compiled form beside it (``mod.pyc``, unchecked-hash: zipimport never writes one, and
    compiling every module on every call made a plain call ~4x slower, 84 ms against 19 ms).
    A ``python`` of another version ignores them (their magic number) and compiles."""
    import importlib.util
    import io
    import marshal
    import zipfile

    import netplumb

    def module(zf: zipfile.ZipFile, name: str, source: bytes) -> None:
        code = compile(source, name, "exec", dont_inherit=True)
        flags = (1).to_bytes(4, "little")  # hash-based, not checked against the source
        pyc = importlib.util.MAGIC_NUMBER + flags + importlib.util.source_hash(source)
        zf.writestr(name, source)
        zf.writestr(name + "c", pyc + marshal.dumps(code))

    pkg = os.path.dirname(os.path.abspath(netplumb.__file__))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("__main__.py", "\n".join(_entry()) + "\n")
        for root, dirs, files in os.walk(pkg):
            dirs[:] = sorted(d for d in dirs if d != "__pycache__")
            rel = os.path.normpath("netplumb/" + os.path.relpath(root, pkg))
            if "__init__.py" not in files:  # a namespace package: zipimport needs an __init__
                module(zf, rel + "/__init__.py", b"")
            for name in sorted(files):
                full = os.path.join(root, name)
                if name.endswith(".py"):
                    with open(full, "rb") as f:
                        module(zf, rel + "/" + name, f.read())
                elif name.endswith((".sh", ".typed")):
                    zf.write(full, rel + "/" + name)
    return f"#!{python} -S\n".encode() + buf.getvalue()


def _write(path: str, data: bytes, mode: int) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(tmp, "wb") as f:
            f.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise NetplumbError(f"cannot write {path}: {exc.strerror}") from None


def install(
    plugin_dir: str = "/opt/cni/bin",
    conf_dir: str | None = "/etc/cni/net.d",
    standalone: bool = False,
    python: str = "/usr/bin/python3",
    client: bool | None = None,
    agent: str = "auto",
) -> list[str]:
    """Write the plugin (and, unless ``conf_dir`` is None, the example conflist if no file of
    that name is there); returns the paths written.

    ``client``: the compiled agent client (True), the Python launcher (False), or the client
    when a C compiler is there (None). With ``standalone``, the client only if True: it is
    ``netplumb-cni``, the standalone plugin its fallback beside it (``netplumb-cni.pyz``).
    Without ``standalone``, the file of compiled modules the plain plugin loads from is beside
    it too (``netplumb-cni.modules``).
    ``agent``: the client's agent mode (``compile_client``)."""
    if agent not in AGENT_MODES:
        raise NetplumbError(f"invalid agent mode {agent!r}: auto, connect or off")
    written = []
    for d in (plugin_dir, conf_dir):
        if d is not None:
            try:
                os.makedirs(d, exist_ok=True)
            except OSError as exc:
                raise NetplumbError(f"cannot create {d}: {exc.strerror}") from None
    plugin = os.path.join(plugin_dir, PLUGIN)
    modules = None if standalone else plugin + ".modules"
    if modules is not None:
        new = not os.path.exists(modules)
        _write(modules, modules_bytes(), 0o644)
        written.append(modules)
        try:
            return _install_plugin(plugin, conf_dir, standalone, python, client, agent, written)
        except BaseException:
            if new:  # a failed install leaves nothing it made
                os.unlink(modules)
            raise
    return _install_plugin(plugin, conf_dir, standalone, python, client, agent, written)


def _install_plugin(
    plugin: str,
    conf_dir: str | None,
    standalone: bool,
    python: str,
    client: bool | None,
    agent: str,
    written: list[str],
) -> list[str]:
    modules = None if standalone else plugin + ".modules"
    compiled = False
    if client or (client is None and not standalone):
        pyz = None
        if standalone:
            pyz = plugin + ".pyz"
            _write(pyz, standalone_bytes(python), 0o755)
            written.append(pyz)
        tmp = f"{plugin}.{os.getpid()}.tmp"
        try:
            compiled = compile_client(tmp, agent, python if standalone else None, pyz, modules)
        except NetplumbError:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        if compiled:
            os.replace(tmp, plugin)
        elif client:
            raise NetplumbError("cannot build the netplumb-cni client: no C compiler (cc)")
    if not compiled:
        data = standalone_bytes(python) if standalone else launcher_text(modules).encode()
        _write(plugin, data, 0o755)
    written.insert(0, plugin)
    if conf_dir is not None:
        conflist = os.path.join(conf_dir, CONFLIST)
        if not os.path.exists(conflist):  # never overwrite an administrator's edits
            _write(conflist, EXAMPLE.encode(), 0o644)
            written.append(conflist)
    return written
