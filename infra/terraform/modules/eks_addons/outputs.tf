output "release_versions" {
  description = "Chart version of every release, by release name."
  value = {
    karpenter                    = helm_release.karpenter.version
    keda                         = helm_release.keda.version
    vpa                          = helm_release.vpa.version
    aws-load-balancer-controller = helm_release.aws_load_balancer_controller.version
    external-secrets             = helm_release.external_secrets.version
    kube-prometheus-stack        = helm_release.kube_prometheus_stack.version
    adot-collector               = helm_release.adot_collector.version
  }
}

output "pod_identity_role_arns" {
  description = "IAM role of each controller that calls AWS, by controller."
  value       = { for name, role in aws_iam_role.controller : name => role.arn }
}
