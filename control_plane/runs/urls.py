from django.urls import path

from control_plane.runs import apis

app_name = "runs"

urlpatterns = [
    path("runs/", apis.RunCollectionApi.as_view(), name="runs"),
    path("runs/<str:run_id>/", apis.RunDetailApi.as_view(), name="run-detail"),
    path("runs/<str:run_id>/cancel/", apis.RunCancelApi.as_view(), name="run-cancel"),
    path("runs/<str:run_id>/resume/", apis.RunResumeApi.as_view(), name="run-resume"),
    path("runs/<str:run_id>/events/", apis.RunEventsApi.as_view(), name="run-events"),
    path("runs/<str:run_id>/events/stream/", apis.RunEventStreamApi.as_view(), name="run-event-stream"),
    path("adapters/", apis.AdapterCollectionApi.as_view(), name="adapters"),
    path("adapters/<str:name>/", apis.AdapterDetailApi.as_view(), name="adapter-detail"),
    path("adapters/<str:name>/manifest/", apis.AdapterManifestApi.as_view(), name="adapter-manifest"),
]
