from django.urls import path

from control_plane.deployments import apis

app_name = "deployments"

# Adapter names take <path:...> here so that '/etc/x' or '../x' reach the view and get a 400
# naming the problem, rather than a bare "no route" 404.
urlpatterns = [
    path("adapters/<path:name>/load/", apis.AdapterLoadApi.as_view(), name="adapter-load"),
    path("adapters/<path:name>/unload/", apis.AdapterUnloadApi.as_view(), name="adapter-unload"),
    path("deployments/", apis.DeploymentCollectionApi.as_view(), name="deployments"),
    path("deployments/<int:deployment_id>/", apis.DeploymentDetailApi.as_view(), name="deployment-detail"),
    path(
        "deployments/<int:deployment_id>/unload/",
        apis.DeploymentUnloadApi.as_view(),
        name="deployment-unload",
    ),
    path("served-models/", apis.ServedModelsApi.as_view(), name="served-models"),
    path("compare/", apis.CompareApi.as_view(), name="compare"),
    path("compare/batch/", apis.CompareBatchApi.as_view(), name="compare-batch"),
    path("comparisons/", apis.ComparisonCollectionApi.as_view(), name="comparisons"),
    path("comparisons/<int:comparison_id>/", apis.ComparisonDetailApi.as_view(), name="comparison-detail"),
]
