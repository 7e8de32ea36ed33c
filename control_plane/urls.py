"""URL map: /admin/ (staff), /api/v1/ (token or session), /v1/ (OpenAI-compatible, Bearer token),
/api/schema/ and /api/docs/ (offline),
and the old Flask app's routes at the root (control_plane.legacy)."""

from django.contrib import admin
from django.contrib.auth.decorators import login_not_required
from django.urls import include, path
from django.views.generic import RedirectView

from control_plane.core.api import RedocView, SchemaView, SwaggerView
from control_plane.core.metrics import metrics_view
from control_plane.core.views import healthz

# Each app brings its own routes (and URL namespace).
api_v1 = [
    path("", include("control_plane.datasets.urls")),
    path("", include("control_plane.runs.urls")),
    path("", include("control_plane.deployments.urls")),
]

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="admin:index", permanent=False)),
    path("healthz", healthz, name="healthz"),
    # The old Flask app's routes (/generate_data, /finetune...), on the same services as /api/v1.
    path("", include("control_plane.legacy.urls")),
    path("metrics", metrics_view, name="metrics"),  # Prometheus; open unless SYNTHTUNE_METRICS_TOKEN
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    # OpenAI's API shapes (files, fine_tuning, models, chat/completions) for the official SDK.
    path("v1/", include("control_plane.openai_api.urls")),
    # DRF answers anonymous calls to these with 401/403 itself (SERVE_PERMISSIONS).
    path("api/schema/", login_not_required(SchemaView.as_view()), name="schema"),
    path("api/docs/", login_not_required(SwaggerView.as_view(url_name="schema")), name="docs"),
    path("api/redoc/", login_not_required(RedocView.as_view(url_name="schema")), name="redoc"),
]

handler404 = "control_plane.core.views.not_found"
handler500 = "control_plane.core.views.server_error"
