"""MQTT hook (paho-mqtt): each frame's grasps and result as JSON on a broker's topics.

URL: ``mqtt://HOST[:PORT]/PREFIX?qos=1&retain=1`` (port 1883 by default,
prefix ``edgeseg``). Topics:

``PREFIX/grasps``  the frame's grasps, the JSON line of docs/protocol.md (section 9)
``PREFIX/result``  the frame's instances: ``{"frame_id", "t_us", "instances": [{"class_id",
                   "class_name", "score", "box"}]}`` (boxes XYXY pixels; masks stay on the board)
``PREFIX/status``  ``online`` when connected, ``offline`` as the broker's last will (retained)

With ``retain=1`` (the default) the broker keeps the last grasps and result,
so a subscriber that connects later gets the latest frame at once. The
connection is made in the background (``connect_async``) and paho's network
thread reconnects with backoff (``reconnect_max_s``): a broker that is down
at start or goes away never stops the run; frames published while
disconnected count as ``failed`` (QoS 0) or wait in paho's bounded outgoing
queue (QoS 1/2; ``4 x queue_size`` messages) and go out on reconnect. Only
the JSON payloads are written here; MQTT itself is paho's.
"""

from __future__ import annotations

import json
import threading
import uuid
from urllib.parse import urlsplit

from edgeseg import protocol
from edgeseg.hooks.base import Hook, HookItem, LinkSequence
from edgeseg.hooks.options import split_options

OPTIONS = {"qos": int, "retain": bool, "client_id": str, "keepalive_s": int, "reconnect_max_s": float}


def _paho():
    try:
        import paho.mqtt.client as mqtt  # noqa: PLC0415 - optional dependency, imported when an mqtt hook opens
    except ImportError:
        raise ImportError("the mqtt hook needs paho-mqtt: pip install 'edgeseg[cell]'") from None
    return mqtt


def result_json(item: HookItem) -> str:
    """The ``PREFIX/result`` payload of one frame."""
    r = item.result
    insts = [{"class_id": int(c), "class_name": r.class_names[int(c)], "score": round(float(s), 4),
              "box": [round(float(v), 2) for v in b]} for c, s, b in zip(r.class_ids, r.scores, r.boxes, strict=True)]
    return json.dumps({"frame_id": r.frame_id, "t_us": item.timestamp_us, "instances": insts}, separators=(",", ":"))


class MqttHook(Hook):
    """Publishes each frame to an MQTT broker.

    Args:
        host: Broker host.
        port: Broker port.
        prefix: Topic prefix (``PREFIX/grasps``, ``PREFIX/result``, ``PREFIX/status``).
        qos: MQTT quality of service for frames, 0, 1 or 2.
        retain: Keep the last grasps and result on the broker.
        client_id: MQTT client id (default: ``edgeseg-<random>``).
        keepalive_s: MQTT keepalive, seconds.
        reconnect_max_s: Longest wait between reconnect attempts, seconds.
        **opts: :class:`~edgeseg.hooks.base.Hook` options.
    """

    name = "mqtt"

    def __init__(self, host: str, port: int = 1883, prefix: str = "edgeseg", *, qos: int = 1, retain: bool = True,
                 client_id: str = "", keepalive_s: int = 30, reconnect_max_s: float = 2.0, **opts) -> None:
        if qos not in (0, 1, 2):
            raise ValueError(f"mqtt qos must be 0, 1 or 2, got {qos!r}")
        if not prefix or "#" in prefix or "+" in prefix:
            raise ValueError(f"mqtt topic prefix must be non-empty without wildcards, got {prefix!r}")
        mqtt = _paho()
        super().__init__(**opts)
        self.host, self.port, self.prefix, self.qos, self.retain = host, port, prefix.strip("/"), qos, retain
        self._seq = LinkSequence()
        self._connected = threading.Event()
        self._was_connected = False
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or f"edgeseg-{uuid.uuid4().hex[:8]}")
        self._client.reconnect_delay_set(min_delay=1, max_delay=max(1, int(reconnect_max_s + 0.999)))
        self._client.max_queued_messages_set(max(4, 4 * self.queue_size))
        self._client.will_set(self.topic("status"), "offline", qos=1, retain=True)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._count(link_up=False)
        self._client.connect_async(host, port, keepalive=keepalive_s)
        self._client.loop_start()

    @classmethod
    def from_url(cls, url: str, **opts) -> MqttHook:
        bare, q = split_options(url, OPTIONS)
        parts = urlsplit(bare)
        if parts.scheme != "mqtt" or not parts.hostname:
            raise ValueError(f"mqtt hook URL must be mqtt://HOST[:PORT]/PREFIX, got {url!r}")
        return cls(parts.hostname, parts.port or 1883, parts.path.strip("/") or "edgeseg", **{**q, **opts})

    def topic(self, leaf: str) -> str:
        return f"{self.prefix}/{leaf}"

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def wait_connected(self, timeout: float) -> bool:
        """Blocks until the broker accepted the connection (tests, start-up scripts)."""
        return self._connected.wait(timeout)

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            self._count(link_up=False, error=f"broker refused: {reason_code}")
            return
        client.publish(self.topic("status"), "online", qos=1, retain=True)
        self._count(link_up=True, reconnects=int(self._was_connected))
        self._was_connected = True
        self._forget("down")
        self._connected.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self._connected.clear()
        self._count(link_up=False, error=f"broker connection lost: {reason_code}")
        self._log_once("down", "mqtt hook: lost %s:%d (%s); paho reconnects in the background (logged once)",
                       self.host, self.port, reason_code)

    def _deliver(self, item: HookItem) -> bool:
        if self.qos == 0 and not self._connected.is_set():
            self._count(error="broker not connected")
            return False
        grasps = protocol.message_to_json(self._seq.grasps(item))
        ok = True
        for leaf, payload in (("grasps", grasps), ("result", result_json(item))):
            info = self._client.publish(self.topic(leaf), payload, qos=self.qos, retain=self.retain)
            ok &= info.rc == 0
        return ok

    def _close_sink(self) -> None:
        if self._connected.is_set():
            self._client.publish(self.topic("status"), "offline", qos=1, retain=True).wait_for_publish(1.0)
        self._client.disconnect()
        self._client.loop_stop()
