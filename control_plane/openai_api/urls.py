"""/v1/: OpenAI's files, fine-tuning jobs, models and inference routes."""

from django.urls import path

from control_plane.openai_api import file_apis, inference_apis, job_apis, model_apis

app_name = "openai"

urlpatterns = [
    path("files", file_apis.FileCollectionApi.as_view(), name="files"),
    path("files/<str:file_id>", file_apis.FileDetailApi.as_view(), name="file-detail"),
    path("files/<str:file_id>/content", file_apis.FileContentApi.as_view(), name="file-content"),
    path("fine_tuning/jobs", job_apis.JobCollectionApi.as_view(), name="jobs"),
    path("fine_tuning/jobs/<str:job_id>", job_apis.JobDetailApi.as_view(), name="job-detail"),
    path("fine_tuning/jobs/<str:job_id>/cancel", job_apis.JobCancelApi.as_view(), name="job-cancel"),
    path("fine_tuning/jobs/<str:job_id>/events", job_apis.JobEventsApi.as_view(), name="job-events"),
    path("fine_tuning/jobs/<str:job_id>/checkpoints", job_apis.JobCheckpointsApi.as_view(), name="job-checkpoints"),
    path("models", model_apis.ModelCollectionApi.as_view(), name="models"),
    # Model ids may hold a slash (microsoft/Phi-3-mini-4k-instruct).
    path("models/<path:model>", model_apis.ModelDetailApi.as_view(), name="model-detail"),
    path("chat/completions", inference_apis.ChatCompletionsApi.as_view(), name="chat-completions"),
    path("completions", inference_apis.CompletionsApi.as_view(), name="completions"),
]
