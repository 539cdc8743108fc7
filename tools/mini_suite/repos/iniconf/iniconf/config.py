"""The parsed configuration and its typed getters."""

import re

DEFAULT_SECTION = "DEFAULT"
MAX_INTERPOLATION_DEPTH = 10

_REFERENCE = re.compile(r"\$\{([^}]*)\}")
_TRUE = {"1", "yes", "true", "on"}
_FALSE = {"0", "no", "false", "off"}
_MISSING = object()


class MissingOptionError(KeyError):
    """The section or the key does not exist."""

    def __str__(self):
        return self.args[0]


class InterpolationError(ValueError):
    """A ``${...}`` reference cannot be resolved."""


class Config:
    """Sections of key/value strings, plus the ``[DEFAULT]`` section's values."""

    def __init__(self):
        self._sections = {}
        self.defaults = {}

    # -- structure

    def add_section(self, name):
        if name == DEFAULT_SECTION:
            return
        self._sections.setdefault(name, {})

    def sections(self):
        """Section names in the order they first appeared (DEFAULT excluded)."""
        return list(self._sections)

    def has_section(self, name):
        return name in self._sections

    def options(self, section):
        """Keys of ``section``, including the defaults it inherits."""
        keys = list(self._section(section))
        keys.extend(k for k in self.defaults if k not in keys)
        return keys

    def set(self, section, key, value):
        key = key.lower()
        if section == DEFAULT_SECTION:
            self.defaults[key] = value
        else:
            self.add_section(section)
            self._sections[section][key] = value

    def raw_items(self, section):
        """(key, uninterpolated value) pairs of ``section`` itself."""
        return list(self._section(section).items())

    def _section(self, name):
        if name == DEFAULT_SECTION:
            return self.defaults
        try:
            return self._sections[name]
        except KeyError:
            raise MissingOptionError("no section [%s]" % name) from None

    # -- lookup

    def get(self, section, key, default=_MISSING, raw=False):
        """The value of ``key`` in ``section``, with ``${...}`` references resolved."""
        key = key.lower()
        values = self._section(section)
        if key in values:
            value = values[key]
        elif key in self.defaults:
            value = self.defaults[key]
        elif default is not _MISSING:
            return default
        else:
            raise MissingOptionError("no option %r in section [%s]" % (key, section))
        if raw:
            return value
        return self._interpolate(section, value, 1)

    def _interpolate(self, section, value, depth):
        if depth > MAX_INTERPOLATION_DEPTH:
            raise InterpolationError("references nested too deeply (a cycle?) in %r" % value)

        def replace(match):
            ref = match.group(1)
            ref_section, _, ref_key = ref.rpartition(":")
            ref_section = ref_section or section
            try:
                target = self.get(ref_section, ref_key, raw=True)
            except MissingOptionError:
                raise InterpolationError("bad reference ${%s} in %r" % (ref, value)) from None
            return self._interpolate(ref_section, target, depth + 1)

        return _REFERENCE.sub(replace, value)

    def getint(self, section, key, default=_MISSING):
        value = self.get(section, key, default)
        return value if value is default else int(value)

    def getfloat(self, section, key, default=_MISSING):
        value = self.get(section, key, default)
        return value if value is default else float(value)

    def getbool(self, section, key, default=_MISSING):
        value = self.get(section, key, default)
        if value is default:
            return value
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        raise ValueError("not a boolean: %r" % value)

    def getlist(self, section, key, default=_MISSING, sep=","):
        """The value split on ``sep`` (and newlines), items stripped, empty ones dropped."""
        value = self.get(section, key, default)
        if value is default:
            return value
        items = value.replace("\n", sep).split(sep)
        return [item.strip() for item in items if item.strip()]

    def as_dict(self):
        """{section: {key: interpolated value}} for every section."""
        return {
            name: {key: self.get(name, key) for key in self.options(name)}
            for name in self.sections()
        }
