"""The OpenAPI 3.1 description of the service, served at ``/openapi.json``."""

from __future__ import annotations

from typing import Any

from deepfakedetect.video.people import PEOPLE_RULES

__all__ = ["openapi_schema"]

_ERROR = {
    "type": "object",
    "required": ["error", "detail"],
    "properties": {
        "error": {"type": "string", "description": "A short name: TooLarge, Busy, Timeout, ImageDecodeError, ..."},
        "detail": {"type": "string", "description": "What was wrong and what to do."},
    },
}


def _error(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    if headers:
        out["headers"] = headers
    return out


_FACE = {
    "type": "object",
    "properties": {
        "box": {"type": "array", "items": {"type": "number"}, "minItems": 4, "maxItems": 4, "description": "x1, y1, x2, y2 in the input's pixels"},
        "landmarks": {"type": "array", "items": {"type": "array", "items": {"type": "number"}}},
        "confidence": {"type": "number"},
        "fake_score": {"type": "number", "minimum": 0, "maximum": 1},
    },
}

_RESULT = {
    "type": "object",
    "description": (
        "The result's to_dict(): ImageResult or VideoResult, with 'media' ('image' or 'video'), "
        "'source' set to the uploaded file's name, and for images 'image' (size) and 'explanations'. "
        "Keys added by later versions (e.g. 'verdict', 'people') are passed through."
    ),
    "required": ["status", "fake_score", "label", "threshold", "media", "model"],
    "properties": {
        "media": {"type": "string", "enum": ["image", "video"]},
        "source": {"type": "string"},
        "status": {"type": "string", "enum": ["ok", "no_face"]},
        "fake_score": {"type": ["number", "null"], "minimum": 0, "maximum": 1, "description": "calibrated probability of fake"},
        "label": {"type": ["string", "null"], "enum": ["real", "fake", None]},
        "is_fake": {"type": ["boolean", "null"]},
        "threshold": {"type": "number"},
        "face_stage": {"type": "boolean"},
        "faces": {"type": "array", "items": {"$ref": "#/components/schemas/Face"}},
        "image": {"type": "object", "properties": {"width": {"type": "integer"}, "height": {"type": "integer"}}},
        "explanations": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "face_index": {"type": "integer"},
                    "box": {"type": ["array", "null"], "items": {"type": "number"}},
                    "fake_score": {"type": "number"},
                    "layer": {"type": "string"},
                    "overlay": {"type": "string", "description": "Grad-CAM over the scored crop, a data: URL (PNG)"},
                },
            },
        },
        "frames": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "index": {"type": "integer"},
                    "timestamp": {"type": "number"},
                    "fake_score": {"type": ["number", "null"]},
                    "faces": {"type": "array", "items": {"$ref": "#/components/schemas/Face"}},
                },
            },
        },
        "segments": {"type": "array", "items": {"type": "object"}},
        "sampler": {"type": "string"},
        "aggregator": {"type": "string"},
        "people": {
            "type": "array",
            "items": {"type": "object"},
            "description": "videos: one entry per person (face track), each scored alone, with start, end and segments",
        },
        "people_rule": {"type": "string"},
        "video": {"type": "object"},
        "model": {"type": "object"},
    },
    "additionalProperties": True,
}


def openapi_schema(version: str) -> dict[str, Any]:
    """The OpenAPI document for this version of the service.

    Example:
        >>> sorted(openapi_schema("1.0")["paths"])
        ['/healthz', '/v1/detect', '/v1/model']
    """
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "deepfakedetect",
            "version": version,
            "description": (
                "A local service that tells real images and videos from deepfakes. Binds to 127.0.0.1 by "
                "default; no authentication; no CORS unless enabled."
            ),
        },
        "paths": {
            "/v1/detect": {
                "post": {
                    "summary": "Score an uploaded image or video",
                    "operationId": "detect",
                    "requestBody": {
                        "required": True,
                        "content": {
                            "multipart/form-data": {
                                "schema": {
                                    "type": "object",
                                    "properties": {
                                        "file": {"type": "string", "format": "binary", "description": "the image or video"},
                                        "path": {
                                            "type": "string",
                                            "description": "a file on the server instead of an upload; refused (403) unless the server allows its folder",
                                        },
                                        "sampler": {"type": "string", "description": "videos: a sampler spec, e.g. uniform:num_frames=16 or fps:fps=2"},
                                        "aggregator": {"type": "string", "description": "videos: an aggregator spec, e.g. top_k_mean:k=5"},
                                        "people": {
                                            "type": "string",
                                            "enum": list(PEOPLE_RULES),
                                            "description": "videos: how the people's (face tracks') scores make the video's (default: the model's)",
                                        },
                                        "explain": {"type": "boolean", "description": "images: add Grad-CAM overlays (default true)"},
                                        "threshold": {"type": "number", "minimum": 0, "maximum": 1, "description": "decision threshold (default: the model's)"},
                                    },
                                }
                            }
                        },
                    },
                    "responses": {
                        "200": {"description": "the result", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Result"}}}},
                        "400": _error("bad form fields, unknown sampler or aggregator"),
                        "403": _error("a server-side path was given and is not allowed"),
                        "413": _error("the upload is larger than the server's limit"),
                        "415": _error("not multipart, or the file is neither a supported image nor a video"),
                        "422": _error("unreadable file, or over a limit: pixels, video duration, sampled frames"),
                        "503": _error(
                            "busy: every slot and the queue are taken",
                            {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}},
                        ),
                        "504": _error("not done within the request timeout"),
                    },
                }
            },
            "/v1/model": {
                "get": {
                    "summary": "The model: provenance, calibration, defaults, limits and model card",
                    "operationId": "model",
                    "responses": {"200": {"description": "the model", "content": {"application/json": {"schema": {"type": "object"}}}}},
                }
            },
            "/healthz": {
                "get": {
                    "summary": "Liveness",
                    "operationId": "healthz",
                    "responses": {
                        "200": {
                            "description": "alive",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "properties": {"status": {"const": "ok"}, "version": {"type": "string"}, "busy": {"type": "integer"}},
                                    }
                                }
                            },
                        }
                    },
                }
            },
        },
        "components": {"schemas": {"Error": _ERROR, "Face": _FACE, "Result": _RESULT}},
    }
