// Log Analytics workspace + workspace-based Application Insights with local (instrumentation-key) auth disabled.
// The function app's identity gets Monitoring Metrics Publisher on the component (see roleassignments.bicep) and
// authenticates with APPLICATIONINSIGHTS_AUTHENTICATION_STRING=Authorization=AAD.

param location string
param tags object
param logAnalyticsName string
param appInsightsName string
param retentionInDays int

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: logAnalyticsName
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: retentionInDays
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: appInsightsName
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: workspace.id
    IngestionMode: 'LogAnalytics'
    DisableLocalAuth: true
  }
}

output logAnalyticsId string = workspace.id
output logAnalyticsName string = workspace.name
output appInsightsName string = appInsights.name
