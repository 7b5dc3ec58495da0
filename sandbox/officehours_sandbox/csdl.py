"""Checks JSON bodies against the OData CSDL of Microsoft Graph's event (specs/).

Every property must exist on its type (base types included), with the right JSON type,
and enum values must be members: enough to catch a misspelt or misshapen field.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SPEC = Path(__file__).parent / "specs" / "graph-event.csdl.xml"
EDM = "{http://docs.oasis-open.org/odata/ns/edm}"
PRIMITIVES: dict[str, type | tuple[type, ...]] = {
    "Edm.String": str, "Edm.Boolean": bool, "Edm.Int32": int, "Edm.Double": (int, float),
    "Edm.DateTimeOffset": str, "Edm.Date": str, "Edm.Binary": str, "Edm.Guid": str,
}


@dataclass
class _Type:
    base: str | None
    properties: dict[str, tuple[str, bool]] = field(default_factory=dict)  # name -> type, null


class GraphSchema:
    def __init__(self, path: Path = SPEC) -> None:
        root = ET.parse(path).getroot()
        self.types: dict[str, _Type] = {}
        self.enums: dict[str, set[str]] = {}
        for element in root.iter():
            name = element.get("Name")
            if element.tag in (EDM + "EntityType", EDM + "ComplexType") and name:
                kind = _Type(element.get("BaseType"))
                for prop in element:
                    if prop.tag in (EDM + "Property", EDM + "NavigationProperty"):
                        kind.properties[prop.get("Name", "")] = (
                            prop.get("Type", ""), prop.get("Nullable") != "false")
                self.types[f"graph.{name}"] = kind
            elif element.tag == EDM + "EnumType" and name:
                self.enums[f"graph.{name}"] = {m.get("Name", "") for m in element}

    def _property(self, type_name: str, name: str) -> tuple[str, bool] | None:
        kind: _Type | None = self.types.get(type_name)
        while kind is not None:
            if name in kind.properties:
                return kind.properties[name]
            kind = self.types.get(kind.base) if kind.base else None
        return None

    def check(self, body: Any, type_name: str = "graph.event", where: str = "$") -> list[str]:
        """Problems of `body` as an instance of `type_name`, empty when it conforms."""
        if type_name.startswith("Collection("):
            if not isinstance(body, list):
                return [f"{where}: expected a list"]
            inner = type_name[len("Collection("):-1]
            return [p for i, item in enumerate(body) for p in self.check(item, inner,
                                                                          f"{where}[{i}]")]
        if type_name in PRIMITIVES:
            ok = isinstance(body, PRIMITIVES[type_name]) and not (
                type_name != "Edm.Boolean" and isinstance(body, bool))
            return [] if ok else [f"{where}: expected {type_name}, got {body!r}"]
        if type_name in self.enums:
            ok = isinstance(body, str) and body in self.enums[type_name]
            return [] if ok else [f"{where}: {body!r} is not a member of {type_name}"]
        if not isinstance(body, dict):
            return [f"{where}: expected an object of {type_name}"]
        problems = []
        for key, value in body.items():
            if "@" in key:  # OData annotations: @odata.etag, @removed...
                continue
            found = self._property(type_name, key)
            if found is None:
                problems.append(f"{where}.{key}: no such property on {type_name}")
            elif value is None:
                if not found[1]:
                    problems.append(f"{where}.{key}: may not be null")
            else:
                problems += self.check(value, found[0], f"{where}.{key}")
        return problems
