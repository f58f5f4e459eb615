"""Opening an SSH connection: the socket (direct or through ProxyCommand/ProxyJump), the
handshake under the host-key policy, authentication, and turning every way that can fail into
ONE TransportError saying what to do, with `retryable` set for connection-level failures
(refused, timeout, reset) and not for auth or host key failures (see Transport.connect_with_retries).
"""
from __future__ import annotations

import dataclasses
import errno
import signal
import socket
from typing import Any, Optional, Tuple

import paramiko
from paramiko.ssh_exception import (AuthenticationException, BadHostKeyException,
                                    NoValidConnectionsError, PasswordRequiredException,
                                    SSHException)

from ...config import Device
from ...errors import TransportError
from .hostkeys import apply_policy, changed_key_error
from .target import SSHTarget, parse_proxy_jump, resolve_target

#: seconds between SSH keepalive packets (dead links are caught by the idle timeout, not these)
KEEPALIVE_S = 15


def connect_client(device: Device, target: SSHTarget
                   ) -> Tuple[paramiko.SSHClient, Optional[paramiko.SSHClient]]:
    """One connection attempt: an authenticated SSHClient whose host key passed the policy, and
    the client of its ProxyJump host (None without one), which the caller closes after it."""
    timeout = float(device.connect_timeout_s)
    client = paramiko.SSHClient()
    policy = apply_policy(client, device, target)
    jump: Optional[paramiko.SSHClient] = None
    try:
        sock, jump = open_socket(device, target, timeout)
        client.connect(target.hostname, port=target.port, username=target.user,
                       key_filename=target.key_filenames or None,
                       allow_agent=target.allow_agent, look_for_keys=target.look_for_keys,
                       timeout=timeout, banner_timeout=timeout, auth_timeout=timeout,
                       channel_timeout=timeout, sock=sock)
        t = client.get_transport()
        assert t is not None
        policy.check_revoked(t.get_remote_server_key())  # known, but also marked @revoked
    except Exception as e:  # noqa: BLE001 - mapped to TransportError / HostKeyError
        client.close()
        if jump is not None:
            jump.close()
        raise map_connect_error(device, target, e) from None
    t.set_keepalive(KEEPALIVE_S)
    install_exit_signal_handler(t)
    return client, jump


def scan_host_key(device: Device, timeout: Optional[float] = None) -> Tuple[str, paramiko.PKey]:
    """The host key the device presents (no authentication, nothing verified): returns
    (known_hosts name, key). For `edge-bench devices trust`, which shows the fingerprint and
    appends known_hosts_line(name, key) to the device's known_hosts."""
    target = resolve_target(device)
    timeout = timeout or device.connect_timeout_s
    sock, jump = open_socket(device, target, timeout)
    t = paramiko.Transport(sock)
    try:
        t.banner_timeout = timeout
        t.start_client(timeout=timeout)
        return target.host_key_name, t.get_remote_server_key()
    except Exception as e:  # noqa: BLE001
        raise map_connect_error(device, target, e) from None
    finally:
        t.close()
        if jump is not None:
            jump.close()


def _auth_error(device: Device, target: SSHTarget, detail: str = "") -> TransportError:
    if target.key_filenames and not target.allow_agent:
        key = target.key_filenames[0]
        what = f"with key {key}"
        pub = f"{key}.pub"
    elif target.key_filenames:
        what = f"with keys {', '.join(target.key_filenames)} (IdentityFile), ssh-agent and ~/.ssh/id_*"
        pub = f"{target.key_filenames[0]}.pub"
    else:
        what = "with ssh-agent keys and the default keys ~/.ssh/id_*"
        pub = "your public key"
    hint = (f"check the user name, and that {pub} is in ~{target.user}/.ssh/authorized_keys on the"
            f" device (`ssh-copy-id -i {pub} -p {target.port} {target.user}@{target.hostname}`);"
            f" test with `ssh -p {target.port}"
            f"{' -i ' + target.key_filenames[0] if target.key_filenames else ''}"
            f" {target.user}@{target.hostname} true`; or set user:/key: in devices.yaml")
    return TransportError(device.name, f"authentication failed for {target.where} {what}{': ' + detail if detail else ''}",
                retryable=False, hint=hint)


def map_connect_error(device: Device, target: SSHTarget, e: BaseException) -> TransportError:
    hp = f"{target.hostname}:{target.port}"
    if isinstance(e, TransportError):
        return e
    if isinstance(e, BadHostKeyException):
        return changed_key_error(device, target, e.key, e.expected_key)
    if isinstance(e, PasswordRequiredException):
        return TransportError(device.name, f"key {', '.join(target.key_filenames) or ''} is encrypted and no passphrase"
                    " is available", retryable=False,
                    hint="load it into ssh-agent (`ssh-add KEY`) and remove key: from devices.yaml,"
                         " or use a key without a passphrase")
    if isinstance(e, AuthenticationException):
        return _auth_error(device, target, str(e) if str(e) not in ("", "Authentication failed.") else "")
    if isinstance(e, NoValidConnectionsError):
        codes = {getattr(x, "errno", None) for x in e.errors.values()}
        if codes <= {errno.ECONNREFUSED}:
            return TransportError(device.name, f"connection refused by {hp}", retryable=True,
                        hint="is the device on and sshd running? check host: and port:")
        return TransportError(device.name, f"cannot reach {hp}: {e}", retryable=True,
                    hint="check the network route to the device")
    if isinstance(e, socket.gaierror):
        again = e.errno in (getattr(socket, "EAI_AGAIN", -3),)
        return TransportError(device.name, f"cannot resolve host name {target.hostname!r}: {e.strerror}",
                    retryable=again,
                    hint="check host: in devices.yaml (or HostName in ~/.ssh/config) and DNS")
    if isinstance(e, (socket.timeout, TimeoutError)):
        return TransportError(device.name, f"timed out connecting to {hp} after {device.connect_timeout_s:g} s",
                    retryable=True, hint="is the device on this network? raise connect_timeout_s if it is slow")
    if isinstance(e, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError, EOFError)):
        return TransportError(device.name, f"connection to {hp} was closed during the SSH handshake", retryable=True,
                    hint="sshd may be overloaded (MaxStartups) or a firewall drops the connection")
    if isinstance(e, SSHException):
        text = str(e)
        low = text.lower()
        if "no authentication methods" in low:
            return _auth_error(device, target, "no key to offer (no key: given, no ssh-agent, no ~/.ssh/id_*)")
        if "no existing session" in low or "negotiation failed" in low:
            # the transport thread died or start_client() timed out before the handshake finished
            return TransportError(device.name, f"SSH handshake with {hp} did not complete within"
                        f" {device.connect_timeout_s:g} s", retryable=True,
                        hint="is that port an SSH server? is the device overloaded?")
        if "banner" in low or "timeout" in low or "timed out" in low:
            return TransportError(device.name, f"no SSH greeting from {hp} within {device.connect_timeout_s:g} s ({text})",
                        retryable=True, hint="is that port an SSH server? is the device overloaded?")
        if "reset" in low or "eof" in low or "closed" in low:
            return TransportError(device.name, f"connection to {hp} was closed during the SSH handshake ({text})",
                        retryable=True)
        if "not a valid" in low or "private key" in low or "key" in low and "file" in low:
            return TransportError(device.name, f"cannot use key {', '.join(target.key_filenames)}: {text}", retryable=False,
                        hint="key: must be an OpenSSH private key file")
        return TransportError(device.name, f"SSH error with {hp}: {text}", retryable=False)
    if isinstance(e, OSError):
        if e.errno in (errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EHOSTDOWN, errno.ECONNREFUSED):
            return TransportError(device.name, f"cannot reach {hp}: {e.strerror}", retryable=True)
        return TransportError(device.name, f"cannot connect to {hp}: {e.strerror or e}", retryable=True)
    return TransportError(device.name, f"cannot connect to {hp}: {type(e).__name__}: {e}", retryable=False)


def open_socket(device: Device, target: SSHTarget, timeout: float
                ) -> Tuple[Any, Optional[paramiko.SSHClient]]:
    """(socket-like object to the target's sshd, ProxyJump client or None)."""
    if target.proxy_command:
        return paramiko.ProxyCommand(target.proxy_command), None
    if target.proxy_jump:
        return open_jump_channel(device, target, timeout)
    try:
        infos = socket.getaddrinfo(target.hostname, target.port, 0, socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise map_connect_error(device, target, e) from None
    last: Optional[BaseException] = None
    for af, st, proto, _cn, addr in infos:
        s = socket.socket(af, st, proto)
        s.settimeout(timeout)
        try:
            s.connect(addr)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            return s, None
        except OSError as e:
            s.close()
            last = e
    if isinstance(last, ConnectionRefusedError):
        raise TransportError(device.name, f"connection refused by {target.hostname}:{target.port}", retryable=True,
                   hint="is the device on and sshd running? check host: and port:")
    raise map_connect_error(device, target, last or OSError("no address"))


def jump_device(device: Device, spec: str) -> Device:
    """The Device for a ProxyJump `[user@]host[:port]` (an ~/.ssh/config alias too): the same
    key, known_hosts and ssh_config as the device, its own host key verified the same way."""
    user, host, port = parse_proxy_jump(device, spec)
    return dataclasses.replace(device, name=f"{device.name} (ProxyJump {host})", host=host,
                               port=port, user=user, host_key=None)


def open_jump_channel(device: Device, target: SSHTarget, timeout: float
                      ) -> Tuple[paramiko.Channel, paramiko.SSHClient]:
    """ProxyJump in paramiko: an authenticated, host-key-verified connection to the jump host,
    then a direct-tcpip channel from it to the target's sshd (what `ssh -J` does)."""
    assert target.proxy_jump
    jdev = jump_device(device, target.proxy_jump)
    jump, nested = connect_client(jdev, resolve_target(jdev))
    if nested is not None:  # the jump host's own ProxyJump: keep its client alive with ours
        jump._eb_nested = nested  # type: ignore[attr-defined]
    try:
        t = jump.get_transport()
        assert t is not None
        chan = t.open_channel("direct-tcpip", (target.hostname, target.port), ("127.0.0.1", 0),
                              timeout=timeout)
        return chan, jump
    except (paramiko.ChannelException, SSHException, OSError, EOFError) as e:
        jump.close()
        why = e.text if isinstance(e, paramiko.ChannelException) else str(e)
        raise TransportError(device.name, f"jump host {target.proxy_jump} could not open a"
                             f" connection to {target.hostname}:{target.port}: {why}",
                             retryable=True,
                             hint="is the device up, and does the jump host's sshd allow"
                                  " forwarding (AllowTcpForwarding yes)?") from None


def install_exit_signal_handler(t: paramiko.Transport) -> None:
    """paramiko ignores the `exit-signal` channel request OpenSSH sends when a command dies of a
    signal; record it so wait() can return -SIGNUM (e.g. -11 for a segfaulting benchmark_model)."""
    try:
        from paramiko.common import MSG_CHANNEL_REQUEST
        table = dict(t._channel_handler_table)
        orig = table[MSG_CHANNEL_REQUEST]
    except Exception:  # noqa: BLE001 - private API changed: keep paramiko's behaviour
        return

    def handle(chan: paramiko.Channel, m: paramiko.Message) -> None:
        start = m.packet.tell()
        try:
            if m.get_text() == "exit-signal":
                m.get_boolean()                 # want_reply (always false)
                name = m.get_text()             # "SEGV", "KILL", ...
                num = getattr(signal, "SIG" + name, None)
                chan._eb_exit_signal = (name, int(num) if num is not None else None)  # type: ignore[attr-defined]
                chan.status_event.set()
                return
        except Exception:  # noqa: BLE001 - malformed: let paramiko deal with it
            pass
        m.packet.seek(start)
        orig(chan, m)

    table[MSG_CHANNEL_REQUEST] = handle
    t._channel_handler_table = table


