"""REST API for dataset versions: lineage, diff, a new version from a file (edit), merge.

One view per operation, each with its own serializers; the logic is in versions.py.
The merge lives at /api/v1/dataset-merges/ so that no dataset name can shadow it.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from control_plane.core.api import ApiView, validated, validated_query
from control_plane.datasets import selectors, services, versions
from control_plane.datasets.apis import DatasetOutputSerializer, JsonlBodySerializer

ERROR = OpenApiResponse(description='Error body: {"message", "code", "extra"}')
_REF_HELP = 'A dataset name, or "name@N" for version N of its family.'


class VersionOutputSerializer(serializers.Serializer):
    """One version in a lineage."""

    name = serializers.CharField()
    family = serializers.CharField()
    version = serializers.IntegerField()
    sha256 = serializers.CharField()
    rows = serializers.IntegerField()
    status = serializers.CharField()
    parent = serializers.CharField(source="parent.name", default=None, allow_null=True)
    operation = serializers.JSONField()
    created_at = serializers.DateTimeField()


class MergeInputOutputSerializer(serializers.Serializer):
    name = serializers.CharField()
    version = serializers.IntegerField()
    sha256 = serializers.CharField()
    exists = serializers.BooleanField(help_text="Whether the input's dataset row is still there.")


class LineageOutputSerializer(serializers.Serializer):
    dataset = VersionOutputSerializer()
    ancestors = VersionOutputSerializer(many=True, help_text="Root first, ending with the parent.")
    children = VersionOutputSerializer(many=True)
    inputs = MergeInputOutputSerializer(many=True, help_text="A merge's sources, as recorded.")


class DiffInputSerializer(serializers.Serializer):
    against = serializers.CharField(help_text=f"The older side. {_REF_HELP}")
    examples = serializers.IntegerField(
        min_value=0, max_value=versions.DIFF_MAX_EXAMPLES, default=versions.DIFF_EXAMPLES
    )


class DiffRefSerializer(serializers.Serializer):
    name = serializers.CharField()
    family = serializers.CharField()
    version = serializers.IntegerField()
    sha256 = serializers.CharField()
    rows = serializers.IntegerField()


class DiffExamplesSerializer(serializers.Serializer):
    added = serializers.ListField(child=serializers.JSONField())
    removed = serializers.ListField(child=serializers.JSONField())
    changed = serializers.ListField(child=serializers.JSONField(), help_text='[{"old", "new"}]')


class DiffOutputSerializer(serializers.Serializer):
    old = DiffRefSerializer()
    new = DiffRefSerializer()
    added = serializers.IntegerField()
    removed = serializers.IntegerField()
    changed = serializers.IntegerField()
    unchanged = serializers.IntegerField()
    examples = DiffExamplesSerializer()


class EditInputSerializer(JsonlBodySerializer):
    name = serializers.CharField(
        required=False, max_length=256, help_text='The new version\'s name; default "<family>.v<N>".'
    )
    version = serializers.IntegerField(
        required=False, min_value=1, help_text="Make the new version from this version of the family."
    )


class MergeInputSerializer(serializers.Serializer):
    sources = serializers.ListField(
        child=serializers.CharField(max_length=300),
        min_length=2,
        max_length=100,
        help_text=f"Datasets in order; the first is the new version's parent. {_REF_HELP}",
    )
    name = serializers.CharField(
        required=False, max_length=256, help_text='Default "<first source\'s family>.v<N>".'
    )
    dedupe = serializers.BooleanField(default=True, help_text="Drop rows identical to an earlier one.")


def _lineage_body(lineage: versions.Lineage) -> dict:
    inputs = [
        {
            "name": e.get("name"),
            "version": e.get("version"),
            "sha256": e.get("sha256"),
            "exists": bool(e["dataset"]),
        }
        for e in lineage.inputs
    ]
    return {
        "dataset": lineage.dataset,
        "ancestors": lineage.ancestors,
        "children": lineage.children,
        "inputs": inputs,
    }


class DatasetLineageApi(ApiView):
    @extend_schema(operation_id="datasets_lineage", responses={200: LineageOutputSerializer, 404: ERROR})
    def get(self, request, name: str):
        lineage = versions.dataset_lineage(dataset=selectors.dataset_get(name=name))
        return Response(LineageOutputSerializer(_lineage_body(lineage)).data)


class DatasetDiffApi(ApiView):
    @extend_schema(
        operation_id="datasets_diff",
        parameters=[DiffInputSerializer],
        responses={200: DiffOutputSerializer, 400: ERROR, 404: ERROR},
        description="Rows of this dataset added, removed and changed relative to `against`, keyed by "
        "normalised instruction (chat rows: the first user message); counts and the first examples.",
    )
    def get(self, request, name: str):
        query = validated_query(DiffInputSerializer, request.query_params)
        new = selectors.dataset_get(name=name)
        old = versions.dataset_version_get(ref=query["against"], field="against")
        report = versions.dataset_diff(old=old, new=new, examples=query["examples"])
        return Response(DiffOutputSerializer(report.as_dict()).data)


class DatasetVersionCreateApi(ApiView):
    @extend_schema(
        operation_id="datasets_versions_create",
        request=EditInputSerializer,
        responses={201: DatasetOutputSerializer, 400: ERROR, 409: ERROR, 413: ERROR, 507: ERROR},
        description="A new version of this dataset from a new JSONL body (an edit): validated like an "
        "upload, the parent left as it is. An unknown dataset or version is 400 (field parent).",
    )
    def post(self, request, name: str):
        data = validated(EditInputSerializer, request.data)
        parent = versions.dataset_version_get(ref=name, version=data.get("version"), field="parent")
        if "file" in data:
            content = data["file"].read()
        elif "content" in data:
            content = data["content"].encode("utf-8")
        else:
            content = services.jsonl_from_rows(data["rows"])
        dataset = versions.dataset_edit(
            owner=request.user, parent=parent, name=data.get("name"), data=content
        )
        return Response(DatasetOutputSerializer(dataset).data, status=status.HTTP_201_CREATED)


class DatasetMergeApi(ApiView):
    @extend_schema(
        operation_id="datasets_merge",
        request=MergeInputSerializer,
        responses={201: DatasetOutputSerializer, 400: ERROR, 404: ERROR, 409: ERROR, 507: ERROR},
        description="A new version whose parent is the first source: every source's rows in order, "
        "exact duplicates dropped unless dedupe is false; row metadata comes along.",
    )
    def post(self, request):
        data = validated(MergeInputSerializer, request.data)
        sources = versions.dataset_versions_resolve(refs=data["sources"], field="sources")
        dataset = versions.dataset_merge(
            owner=request.user, name=data.get("name"), sources=sources, dedupe=data["dedupe"]
        )
        return Response(DatasetOutputSerializer(dataset).data, status=status.HTTP_201_CREATED)
