"""The old Flask app's paths, at the root as it served them (/healthz stays in core.views)."""

from django.urls import path

from control_plane.legacy import apis

app_name = "legacy"

urlpatterns = [
    path("generate_data", apis.GenerateDataApi.as_view(), name="generate-data"),
    path("list_datasets", apis.ListDatasetsApi.as_view(), name="list-datasets"),
    path("finetune", apis.FinetuneApi.as_view(), name="finetune"),
    path("finetune_status", apis.FinetuneStatusApi.as_view(), name="finetune-status"),
    path("list_exported_adapters", apis.ListExportedAdaptersApi.as_view(), name="list-exported-adapters"),
    path("hotload_adapter", apis.HotloadAdapterApi.as_view(), name="hotload-adapter"),
    path("unload_adapter", apis.UnloadAdapterApi.as_view(), name="unload-adapter"),
    path("compare", apis.CompareApi.as_view(), name="compare"),
    path("event_log", apis.EventLogApi.as_view(), name="event-log"),
]
