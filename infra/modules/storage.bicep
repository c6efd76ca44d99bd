// One StorageV2 account for everything: Functions host storage (blobs), the Flex deployment package container and the
// SCIM tables (created by the app on first use, names starting with SCIM_TABLE_PREFIX, so none are declared here).
// Shared-key access is disabled: every client (host, deployment, app) authenticates with the app's managed identity.

param location string
param tags object
param storageAccountName string
param skuName string
param deploymentContainerName string

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: storageAccountName
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    name: skuName
  }
  properties: {
    accessTier: 'Hot'
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    allowSharedKeyAccess: false
    defaultToOAuthAuthentication: true
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    isLocalUserEnabled: false
    isSftpEnabled: false
    isHnsEnabled: false
    dnsEndpointType: 'Standard'
    // Flex Consumption without VNet integration reaches storage over its public endpoint; access is by Entra identity
    // (RBAC) only, since keys and SAS signed with keys are disabled.
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      bypass: 'AzureServices'
      defaultAction: 'Allow'
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      enabled: true
      days: 7
    }
    containerDeleteRetentionPolicy: {
      enabled: true
      days: 7
    }
  }
}

resource deploymentContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: deploymentContainerName
  properties: {
    publicAccess: 'None'
  }
}

output name string = storage.name
output id string = storage.id
// e.g. https://<account>.blob.core.windows.net/ (with trailing slash)
output blobEndpoint string = storage.properties.primaryEndpoints.blob
// SCIM_STORAGE_TABLE_URI wants no trailing slash: https://<account>.table.core.windows.net
output tableEndpoint string = 'https://${storage.name}.table.${environment().suffixes.storage}'
