output "release_versions" {
  description = "Chart version of every controller release."
  value       = module.eks_addons.release_versions
}

output "pod_identity_role_arns" {
  description = "IAM role of each controller that calls AWS."
  value       = module.eks_addons.pod_identity_role_arns
}
