// Key Vault in RBAC mode holding the SCIM bearer token(s) and the access-token signing key(s). The function app reads the secret through a Key Vault
// reference (its system identity gets Key Vault Secrets User in roleassignments.bicep). Audit events go to Log Analytics.
//
// Network: Flex Consumption cannot resolve Key Vault references against a network-restricted vault unless the app is
// VNet-integrated, so the vault keeps its public endpoint; every data-plane call still needs an Entra token and an
// RBAC role on this vault.

param location string
param tags object
param keyVaultName string
param softDeleteRetentionInDays int
param secretName string
param writeSecret bool
param signingKeySecretName string
param writeSigningKeySecret bool
param logAnalyticsWorkspaceId string

@secure()
param secretValue string

@secure()
param signingKeyValue string

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: keyVaultName
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: softDeleteRetentionInDays
    enablePurgeProtection: true
    enabledForDeployment: false
    enabledForDiskEncryption: false
    enabledForTemplateDeployment: false
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }
}

resource scimTokenSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (writeSecret) {
  parent: vault
  name: secretName
  properties: {
    value: secretValue
    contentType: 'text/plain; comma-separated SCIM bearer tokens'
  }
}

resource tokenSigningKeySecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (writeSigningKeySecret) {
  parent: vault
  name: signingKeySecretName
  properties: {
    value: signingKeyValue
    contentType: 'text/plain; comma-separated access-token signing keys, the first signs'
  }
}

resource vaultDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'audit-to-log-analytics'
  scope: vault
  properties: {
    workspaceId: logAnalyticsWorkspaceId
    logs: [
      {
        categoryGroup: 'audit'
        enabled: true
      }
    ]
  }
}

output name string = vault.name
output id string = vault.id
output secretName string = secretName
output signingKeySecretName string = signingKeySecretName
