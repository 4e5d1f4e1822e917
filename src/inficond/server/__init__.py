"""The InFiConD web app: a FastAPI server over one workspace and its built front end.

``create_app(session_or_path, token=None)`` builds the app; ``serve(workspace, host, port, token,
open_browser)`` runs it with uvicorn (127.0.0.1 by default; any other address requires a token,
generated and printed when not given). The API (OpenAPI schema at ``/docs`` and ``/openapi.json``)::

    GET  /api/summary                              (a) configuration
    GET  /api/performance?split=val                (b) per-class teacher/student metrics, alignment
    GET  /api/concepts/map                         (c) t-SNE map of all concepts
    GET  /api/classes/{cls}/concepts?k=&sort=      (d) a class's top-k concepts, what-if AP, patches
    GET  /api/classes/{cls}/suggestions?k=         (d) votes the engine expects to help
    GET  /api/classes/{cls}/whatif/{concept}       (e) metric curves vs. the concept's influence
    GET  /api/concepts/{concept}?cls=              (e) gallery, patches, classes (+ what-if)
    POST /api/concepts        {words: [...]}       add concept words
    POST /api/tune            {instructions: [{class, concept, direction}]}
    GET  /api/provenance                           (f) tuning steps and cumulative change
    POST /api/provenance/undo | /revert {state_id}
    POST /api/export  ->  {files: {json, onnx}}    download links (GET /api/export/files/{name})
    GET  /api/media/patches/{patch_id}, /api/media/images/{image_idx}   files by id only

``cls`` and ``concept`` are an index or a name. Errors are problem JSON ``{title, detail, status}``:
unknown names 404, bad values and bodies 422, workspace conflicts 409, a missing token 401.
"""

from .app import create_app, serve

__all__ = ["create_app", "serve"]
