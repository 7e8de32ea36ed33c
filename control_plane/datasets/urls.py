from django.urls import path

from control_plane.datasets import apis, version_apis

app_name = "datasets"

urlpatterns = [
    path("datasets/", apis.DatasetCollectionApi.as_view(), name="datasets"),
    path("datasets/<str:name>/", apis.DatasetDetailApi.as_view(), name="dataset-detail"),
    path("datasets/<str:name>/preview/", apis.DatasetPreviewApi.as_view(), name="dataset-preview"),
    path("datasets/<str:name>/download/", apis.DatasetDownloadApi.as_view(), name="dataset-download"),
    path("datasets/<str:name>/curate/", apis.DatasetCurateApi.as_view(), name="dataset-curate"),
    path("datasets/<str:name>/lineage/", version_apis.DatasetLineageApi.as_view(), name="dataset-lineage"),
    path("datasets/<str:name>/diff/", version_apis.DatasetDiffApi.as_view(), name="dataset-diff"),
    path(
        "datasets/<str:name>/versions/",
        version_apis.DatasetVersionCreateApi.as_view(),
        name="dataset-versions",
    ),
    # Not under datasets/: a dataset may be called "merge".
    path("dataset-merges/", version_apis.DatasetMergeApi.as_view(), name="dataset-merges"),
    path("generation-jobs/", apis.GenerationJobCollectionApi.as_view(), name="generation-jobs"),
    path(
        "generation-jobs/<str:job_id>/", apis.GenerationJobDetailApi.as_view(), name="generation-job-detail"
    ),
    path(
        "generation-jobs/<str:job_id>/cancel/",
        apis.GenerationJobCancelApi.as_view(),
        name="generation-job-cancel",
    ),
    path(
        "generation-jobs/<str:job_id>/resume/",
        apis.GenerationJobResumeApi.as_view(),
        name="generation-job-resume",
    ),
    path(
        "generation-jobs/<str:job_id>/events/",
        apis.GenerationJobEventsApi.as_view(),
        name="generation-job-events",
    ),
    path(
        "generation-jobs/<str:job_id>/events/stream/",
        apis.GenerationJobEventStreamApi.as_view(),
        name="generation-job-event-stream",
    ),
]
