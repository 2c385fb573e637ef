"""The error types that cross module boundaries, each with a message that says the fix."""


class MtlSplitError(Exception):
    """Base of every error mtl_split raises on purpose (CLIs print these as one line)."""


class CodecError(MtlSplitError, ValueError):
    """A feature payload or SharedFeatures message that cannot be encoded or decoded."""


class BundleError(MtlSplitError):
    """A model bundle that is missing, inconsistent, or does not match its peer."""


class ImageError(MtlSplitError, ValueError):
    """A camera image that cannot be converted (encoding, size, step, corrupt data)."""


class ImageTooLarge(ImageError):
    """A camera image with more pixels than the edge accepts (max_pixels), refused from its
    header before anything is allocated or decoded."""
class SchemaError(CodecError):
    """A SharedFeatures of another wire-format version (another mtl_split release)."""
