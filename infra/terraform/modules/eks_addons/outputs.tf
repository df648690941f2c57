output "release_versions" {
  description = "Chart version of every release, by release name."
  value = {
    karpenter = helm_release.karpenter.version
    keda      = helm_release.keda.version
    vpa       = helm_release.vpa.version
  }
}
