"""OpenAPI components of /v1/: OpenAI's object shapes as output serializers (for the schema only;
the views build the objects in control_plane.openai_api.shapes)."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import serializers

TAG = "OpenAI-compatible"


class _OpenAIErrorObject(serializers.Serializer):
    message = serializers.CharField()
    type = serializers.CharField(help_text="invalid_request_error, permission_error, rate_limit_error, server_error")
    param = serializers.CharField(allow_null=True, help_text="The request field at fault, if one is.")
    code = serializers.CharField(allow_null=True)


class OpenAIErrorSerializer(serializers.Serializer):
    error = _OpenAIErrorObject()


class OpenAIFileSerializer(serializers.Serializer):
    id = serializers.CharField(help_text="file-<dataset name>")
    object = serializers.CharField(help_text="file")
    bytes = serializers.IntegerField()
    created_at = serializers.IntegerField(help_text="Unix seconds.")
    filename = serializers.CharField()
    purpose = serializers.ChoiceField(choices=["fine-tune"])
    status = serializers.ChoiceField(choices=["uploaded", "processed", "error"])
    expires_at = serializers.IntegerField(allow_null=True)
    status_details = serializers.CharField(allow_null=True)


class OpenAIFileListSerializer(serializers.Serializer):
    object = serializers.CharField(help_text="list")
    data = OpenAIFileSerializer(many=True)
    first_id = serializers.CharField(allow_null=True)
    last_id = serializers.CharField(allow_null=True)
    has_more = serializers.BooleanField()


class OpenAIFileDeletedSerializer(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.CharField(help_text="file")
    deleted = serializers.BooleanField()


class _AutoOrNumber(serializers.JSONField):
    """"auto" or a number."""


class OpenAIJobHyperparametersSerializer(serializers.Serializer):
    n_epochs = _AutoOrNumber(help_text='"auto" or a number of epochs.')
    batch_size = _AutoOrNumber(help_text='"auto" or rows per batch.')
    learning_rate_multiplier = _AutoOrNumber(help_text='"auto" or a factor on the trainer\'s 2e-4.')


class _OpenAIJobError(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()
    param = serializers.CharField(allow_null=True)


class _OpenAIMethod(serializers.Serializer):
    type = serializers.CharField(help_text="supervised")
    supervised = serializers.DictField()


class OpenAIJobSerializer(serializers.Serializer):
    id = serializers.CharField(help_text="ftjob-<run id>")
    object = serializers.CharField(help_text="fine_tuning.job")
    created_at = serializers.IntegerField()
    error = _OpenAIJobError(allow_null=True)
    fine_tuned_model = serializers.CharField(allow_null=True, help_text="The adapter's served name.")
    finished_at = serializers.IntegerField(allow_null=True)
    hyperparameters = OpenAIJobHyperparametersSerializer()
    model = serializers.CharField()
    organization_id = serializers.CharField()
    result_files = serializers.ListField(child=serializers.CharField())
    seed = serializers.IntegerField()
    status = serializers.ChoiceField(
        choices=["validating_files", "queued", "running", "succeeded", "failed", "cancelled"]
    )
    trained_tokens = serializers.IntegerField(allow_null=True)
    training_file = serializers.CharField(allow_null=True)
    validation_file = serializers.CharField(allow_null=True)
    estimated_finish = serializers.IntegerField(allow_null=True)
    integrations = serializers.ListField(child=serializers.DictField())
    metadata = serializers.DictField(child=serializers.CharField(), allow_null=True)
    method = _OpenAIMethod()
    user_provided_suffix = serializers.CharField(allow_null=True)


class OpenAIJobListSerializer(serializers.Serializer):
    object = serializers.CharField(help_text="list")
    data = OpenAIJobSerializer(many=True)
    has_more = serializers.BooleanField()


class OpenAIEventSerializer(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.CharField(help_text="fine_tuning.job.event")
    created_at = serializers.IntegerField()
    level = serializers.ChoiceField(choices=["info", "warn", "error"])
    message = serializers.CharField()
    data = serializers.DictField()
    type = serializers.CharField(help_text="message or metrics")


class OpenAIEventListSerializer(serializers.Serializer):
    object = serializers.CharField(help_text="list")
    data = OpenAIEventSerializer(many=True)
    has_more = serializers.BooleanField()


class OpenAICheckpointSerializer(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.CharField(help_text="fine_tuning.job.checkpoint")
    created_at = serializers.IntegerField()
    fine_tuned_model_checkpoint = serializers.CharField()
    fine_tuning_job_id = serializers.CharField()
    metrics = serializers.DictField()
    step_number = serializers.IntegerField()


class OpenAICheckpointListSerializer(serializers.Serializer):
    object = serializers.CharField(help_text="list")
    data = OpenAICheckpointSerializer(many=True)
    first_id = serializers.CharField(allow_null=True)
    last_id = serializers.CharField(allow_null=True)
    has_more = serializers.BooleanField()


class OpenAIModelSerializer(serializers.Serializer):
    id = serializers.CharField()
    object = serializers.CharField(help_text="model")
    created = serializers.IntegerField()
    owned_by = serializers.CharField()


class OpenAIModelListSerializer(serializers.Serializer):
    object = serializers.CharField(help_text="list")
    data = OpenAIModelSerializer(many=True)


ERROR = OpenAIErrorSerializer
FILE, FILE_LIST, FILE_DELETED = OpenAIFileSerializer, OpenAIFileListSerializer, OpenAIFileDeletedSerializer
JOB, JOB_LIST, EVENT_LIST, CHECKPOINT_LIST = OpenAIJobSerializer, OpenAIJobListSerializer, OpenAIEventListSerializer, OpenAICheckpointListSerializer
MODEL, MODEL_LIST = OpenAIModelSerializer, OpenAIModelListSerializer


class BearerAuthScheme(OpenApiAuthenticationExtension):
    """`Authorization: Bearer <token>` in the schema (the SDK's api_key)."""

    target_class = "control_plane.openai_api.base.BearerTokenAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "description": "A synthtune API token, as the SDK's api_key."}
